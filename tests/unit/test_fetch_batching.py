"""How long a consumer's fetch waits for data: Kafka's answer-at-once by default; on the
embedded broker, 64 KiB or its 50 ms, for fewer and larger batches under a steady load."""

from __future__ import annotations

import importlib

import pytest

from lottrace.devstack import EMBEDDED_FETCH_MIN_BYTES, Platform
from lottrace.infra import TansuBroker
from shared.runtime.settings import KafkaSettings


def test_a_fetch_is_answered_at_once_unless_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KAFKA_FETCH_MIN_BYTES", raising=False)
    assert KafkaSettings().fetch_min_bytes == 1
    monkeypatch.setenv("KAFKA_FETCH_MIN_BYTES", "4096")
    assert KafkaSettings().fetch_min_bytes == 4096


@pytest.mark.parametrize("service", ["inventory", "fulfillment", "recall"])
def test_every_service_consumer_is_built_with_the_configured_minimum(
    service: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = importlib.import_module(f"services.{service}.app")
    monkeypatch.setenv("KAFKA_FETCH_MIN_BYTES", "4096")
    monkeypatch.setenv("KAFKA_FETCH_MAX_WAIT_MS", "75")
    runtime = app.create_app(app.Settings()).state.runtime
    # What FastStream hands to AIOKafkaConsumer when the subscriber starts.
    [subscriber] = runtime.broker.subscribers
    assert subscriber._connection_args["fetch_min_bytes"] == 4096
    assert subscriber._connection_args["fetch_max_wait_ms"] == 75


def _environment(platform: Platform) -> dict[str, str]:
    platform.bootstrap_servers = "127.0.0.1:1"
    platform.database_urls = {"inventory": "postgresql://x@127.0.0.1:1/lottrace_inventory"}
    return platform.environment("inventory")


def test_the_embedded_broker_makes_consumers_wait_for_64_kib_or_50_ms() -> None:
    platform = Platform()
    platform.broker = TansuBroker(1)
    environment = _environment(platform)
    assert environment["KAFKA_FETCH_MIN_BYTES"] == str(EMBEDDED_FETCH_MIN_BYTES) == "65536"
    assert environment["KAFKA_FETCH_MAX_WAIT_MS"] == "50"


def test_an_external_kafka_keeps_what_the_environment_says(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("KAFKA_FETCH_MIN_BYTES", raising=False)
    assert "KAFKA_FETCH_MIN_BYTES" not in _environment(Platform())
    monkeypatch.setenv("KAFKA_FETCH_MIN_BYTES", "4096")
    assert _environment(Platform())["KAFKA_FETCH_MIN_BYTES"] == "4096"
