"""Kafka clients built from settings: the FastStream broker (consuming), the outbox producer,
and topic administration. Credentials come from settings and are never logged."""

from __future__ import annotations

import contextlib
import functools
import logging
import ssl
from collections.abc import Iterable
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from aiokafka.helpers import create_ssl_context
from aiokafka.partitioner import DefaultPartitioner, murmur2
from faststream.kafka import KafkaBroker
from faststream.security import BaseSecurity, SASLPlaintext, SASLScram256, SASLScram512

from shared.runtime.settings import KafkaSettings


def _ssl_context(settings: KafkaSettings) -> ssl.SSLContext | None:
    if settings.security_protocol not in ("SSL", "SASL_SSL"):
        return None
    context: ssl.SSLContext = create_ssl_context(
        cafile=settings.ssl_cafile,
        certfile=settings.ssl_certfile,
        keyfile=settings.ssl_keyfile,
        password=settings.ssl_password.get_secret_value() if settings.ssl_password else None,
    )
    return context


def client_options(settings: KafkaSettings) -> dict[str, Any]:
    """aiokafka connection options: servers, TLS and SASL."""
    options: dict[str, Any] = {
        "bootstrap_servers": settings.bootstrap_list,
        "security_protocol": settings.security_protocol,
        "request_timeout_ms": settings.request_timeout_ms,
    }
    context = _ssl_context(settings)
    if context is not None:
        options["ssl_context"] = context
    if settings.security_protocol.startswith("SASL"):
        options["sasl_mechanism"] = settings.sasl_mechanism or "SCRAM-SHA-512"
        options["sasl_plain_username"] = settings.sasl_username
        options["sasl_plain_password"] = (
            settings.sasl_password.get_secret_value() if settings.sasl_password else None
        )
    return options


def faststream_security(settings: KafkaSettings) -> BaseSecurity | None:
    context = _ssl_context(settings)
    use_ssl = context is not None
    if not settings.security_protocol.startswith("SASL"):
        return BaseSecurity(ssl_context=context, use_ssl=use_ssl) if use_ssl else None
    username = settings.sasl_username or ""
    password = settings.sasl_password.get_secret_value() if settings.sasl_password else ""
    mechanism = settings.sasl_mechanism or "SCRAM-SHA-512"
    security_class = {
        "PLAIN": SASLPlaintext,
        "SCRAM-SHA-256": SASLScram256,
        "SCRAM-SHA-512": SASLScram512,
    }[mechanism]
    return security_class(username, password, ssl_context=context, use_ssl=use_ssl)


def make_broker(settings: KafkaSettings, *, service: str) -> KafkaBroker:
    """A consuming FastStream broker: events leave through the outbox producer instead."""
    return KafkaBroker(
        settings.bootstrap_list,
        client_id=f"{settings.client_id_prefix}-{service}",
        request_timeout_ms=settings.request_timeout_ms,
        security=faststream_security(settings),
        consumer_only=True,
        allow_auto_create_topics=False,
        graceful_timeout=10.0,
        # FastStream's own logger has its own handler: this one goes through ours (JSON).
        logger=logging.getLogger("lottrace.faststream"),
        log_level=logging.DEBUG,
        description=f"lottrace {service}",
    )


PARTITION_CACHE_SIZE = 4_096


class MemoPartitioner:
    """aiokafka's default partitioner, remembering the hash of recent keys: the same murmur2
    and the same partition (so the same order per key), without hashing again the one key that
    all of a recall's notices share (16% of the recall process's samples in py-spy during
    `python -m bench.notices_at_scale`; 22 us a record before, under 1.5 us after, timeit)."""

    def __init__(self, maxsize: int = PARTITION_CACHE_SIZE) -> None:
        self._index = functools.lru_cache(maxsize=maxsize)(_partition_index)

    def __call__(self, key: bytes | None, all_partitions: list[int], available: list[int]) -> int:
        if not isinstance(key, bytes):  # None (a random partition) or unhashable: aiokafka's
            choice: int = DefaultPartitioner()(key, all_partitions, available)
            return choice
        return all_partitions[self._index(key, len(all_partitions))]


def _partition_index(key: bytes, partitions: int) -> int:
    """Where DefaultPartitioner picks from the partitions: a pure function of these two."""
    index: int = (murmur2(key) & 0x7FFFFFFF) % partitions
    return index


def make_producer(settings: KafkaSettings, *, service: str) -> AIOKafkaProducer:
    idempotent = settings.enable_idempotence
    return AIOKafkaProducer(
        client_id=f"{settings.client_id_prefix}-{service}-outbox",
        acks="all",
        enable_idempotence=idempotent,
        linger_ms=settings.linger_ms,
        # Room for the record and batch framing around a message the outbox accepted.
        max_request_size=settings.max_message_bytes + 16 * 1024,
        max_batch_size=256 * 1024,
        partitioner=MemoPartitioner(),
        **client_options(settings),
    )


async def ensure_topics(
    settings: KafkaSettings,
    topics: Iterable[str],
    *,
    partitions: int,
    replication_factor: int = 1,
) -> list[str]:
    """Create the topics that do not exist yet; returns the names created."""
    admin = AIOKafkaAdminClient(**client_options(settings))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [name for name in topics if name not in existing]
        if missing:
            # Another starter may win the race: what we wanted exists then.
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(
                    [NewTopic(name, partitions, replication_factor) for name in missing]
                )
        return missing
    finally:
        await admin.close()
