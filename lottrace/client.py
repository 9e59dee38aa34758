"""Clients of a running lottrace platform: the four services over HTTP, the dead-letter topics
over Kafka.

`LottraceClient` talks to receiving, inventory, fulfillment and recall with one API key (sent as
`Authorization: Bearer <key>`). Requests are built from the services' own request models and
answers parsed into their response models, so the CLI and the demo cannot drift from the API.
A 4xx or 5xx answer raises `ServiceError` carrying the service's `{"error", "detail"}`; a
service that does not answer raises `ServiceUnreachable`.

Where the services are comes from `ServiceUrls`: `LOTTRACE_RECEIVING_URL`,
`LOTTRACE_INVENTORY_URL`, `LOTTRACE_FULFILLMENT_URL` and `LOTTRACE_RECALL_URL`, else
http://127.0.0.1:8081 to 8084 (what `make run` starts); the key comes from `LOTTRACE_API_KEY`.

Dead letters: `read_dead_letters` reads `<topic>.dlq` from the beginning without joining a
consumer group (nothing is committed, no consumer is disturbed); `replay_message` turns an entry
back into the record that was refused, for `publish_replays` to put on its source topic again.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, TypeVar
from uuid import UUID

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from pydantic import BaseModel

from lottrace.home import KEY_FILE, default_home
from services.fulfillment.schemas import OrderView as FulfillmentOrder
from services.fulfillment.schemas import ShipmentRequest, ShipmentView
from services.inventory.schemas import LotView as StockLot
from services.recall.schemas import (
    RecallAccepted,
    RecallRequest,
    RecallView,
    TraceBackward,
    TraceForward,
)
from services.receiving.schemas import LotView as ReceivedLot
from services.receiving.schemas import (
    ProductRequest,
    ProductView,
    ReceiptRequest,
    ReceiptView,
    ScanReceiptRequest,
)
from shared.contracts.topics import DLQ_SUFFIX, dead_letter_topic
from shared.runtime.consumer import DLQ_HEADERS, TRUNCATED_HEADER
from shared.runtime.kafka import client_options
from shared.runtime.settings import KafkaSettings

Service = Literal["receiving", "inventory", "fulfillment", "recall"]
SERVICES: tuple[Service, ...] = ("receiving", "inventory", "fulfillment", "recall")
DEFAULT_URLS: dict[Service, str] = {
    "receiving": "http://127.0.0.1:8081",
    "inventory": "http://127.0.0.1:8082",
    "fulfillment": "http://127.0.0.1:8083",
    "recall": "http://127.0.0.1:8084",
}
API_KEY_VARIABLE = "LOTTRACE_API_KEY"
# `make run` keeps its admin key in its data folder (owner-only, the same on every run), so
# `make demo` and the CLI work against it without copying the key by hand.
DEV_KEY_FILE = default_home() / KEY_FILE


def dev_platform_key() -> str | None:
    """The admin key of `make run`'s data folder (`$LOTTRACE_HOME` or the checkout's
    `.lottrace/`), if it has one."""
    try:
        return DEV_KEY_FILE.read_text().strip() or None
    except OSError:
        return None


M = TypeVar("M", bound=BaseModel)


def url_variable(service: Service) -> str:
    """The environment variable naming a service's base URL, e.g. `LOTTRACE_RECALL_URL`."""
    return f"LOTTRACE_{service.upper()}_URL"


@dataclass(frozen=True)
class ServiceUrls:
    receiving: str = DEFAULT_URLS["receiving"]
    inventory: str = DEFAULT_URLS["inventory"]
    fulfillment: str = DEFAULT_URLS["fulfillment"]
    recall: str = DEFAULT_URLS["recall"]

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ServiceUrls:
        environ = os.environ if environ is None else environ
        return cls(
            **{
                service: environ.get(url_variable(service)) or DEFAULT_URLS[service]
                for service in SERVICES
            }
        )

    @classmethod
    def from_mapping(cls, urls: Mapping[str, str]) -> ServiceUrls:
        """From `{"receiving": url, ...}` (what `Platform.urls()` returns); missing ones default."""
        return cls(**{service: urls.get(service) or DEFAULT_URLS[service] for service in SERVICES})

    def but(self, **urls: str | None) -> ServiceUrls:
        """These URLs with some replaced (None keeps the current one)."""
        return replace(self, **{name: url for name, url in urls.items() if url})

    def of(self, service: Service) -> str:
        url: str = getattr(self, service)
        return url.rstrip("/")


@dataclass(frozen=True)
class Connection:
    """Where the services are and the key to send them."""

    urls: ServiceUrls = field(default_factory=ServiceUrls)
    api_key: str | None = field(default=None, repr=False)
    timeout: float = 30.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Connection:
        environ = os.environ if environ is None else environ
        return cls(
            urls=ServiceUrls.from_env(environ),
            api_key=environ.get(API_KEY_VARIABLE) or dev_platform_key(),
        )


@dataclass(eq=False)  # compared and hashed by identity, as exceptions are
class ServiceError(Exception):
    """A service answered with an error: its status and its `{"error", "detail"}`."""

    service: Service
    method: str
    path: str
    status: int
    error: str
    detail: str

    def __post_init__(self) -> None:
        super().__init__(
            f"{self.service} {self.method} {self.path}: {self.status} {self.error}: {self.detail}"
        )

    @property
    def hint(self) -> str | None:
        """What the person at the terminal can do about it, where that is clear."""
        if self.status == 401:
            return (
                f"set {API_KEY_VARIABLE} to an API key of this platform (`make run` prints its"
                " admin key at start-up)"
            )
        if self.status == 403:
            return "the API key lacks the role this needs: use a key with that role, or admin"
        if self.status == 503:
            return f"{self.service} is starting or a dependency is down: see its /readyz"
        return None


class ServiceUnreachable(Exception):
    """A service did not answer at all (refused, timed out, name not resolved)."""

    def __init__(self, service: Service, url: str, reason: str) -> None:
        super().__init__(
            f"cannot reach {service} at {url} ({reason}): is the platform running (`make run`)?"
            f" Its address comes from {url_variable(service)}."
        )
        self.service = service
        self.url = url


def _service_error(service: Service, response: httpx.Response) -> ServiceError:
    request = response.request
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and "error" in body:
        error, detail = str(body["error"]), str(body.get("detail", ""))
    else:
        error, detail = f"http_{response.status_code}", response.text[:300]
    return ServiceError(
        service, request.method, request.url.path, response.status_code, error, detail
    )


class LotNotFound(LookupError):
    """Receiving knows no lot by that code (and SKU)."""


class AmbiguousLotCode(LookupError):
    """Several products have a lot with this code: the SKU must say which."""

    def __init__(self, lot_code: str, skus: Sequence[str]) -> None:
        super().__init__(
            f"lot code {lot_code} is used by {len(skus)} products ({', '.join(skus)}):"
            " say which with the SKU"
        )
        self.lot_code = lot_code
        self.skus = list(skus)


class LottraceClient:
    """One client per service, sharing the key. Use as `async with LottraceClient(...) as api`."""

    def __init__(
        self, connection: Connection, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.connection = connection
        headers = {"user-agent": "lottrace-cli"}
        if connection.api_key:
            headers["authorization"] = f"Bearer {connection.api_key}"
        self._clients: dict[Service, httpx.AsyncClient] = {
            service: httpx.AsyncClient(
                base_url=connection.urls.of(service),
                headers=headers,
                timeout=connection.timeout,
                transport=transport,
            )
            for service in SERVICES
        }

    async def __aenter__(self) -> LottraceClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await asyncio.gather(*(client.aclose() for client in self._clients.values()))

    # ------------------------------------------------------------------ plumbing

    async def request(
        self,
        service: Service,
        method: str,
        path: str,
        *,
        body: BaseModel | None = None,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """Send one request; any 4xx or 5xx answer raises ServiceError."""
        client = self._clients[service]
        content = body.model_dump_json(exclude_none=True).encode() if body is not None else None
        request_headers = dict(headers or {})
        if content is not None:
            request_headers["content-type"] = "application/json"
        try:
            response = await client.request(
                method, path, content=content, params=params, headers=request_headers
            )
        except httpx.TransportError as error:
            raise ServiceUnreachable(
                service, str(client.base_url), f"{type(error).__name__}: {error}".rstrip(": ")
            ) from error
        if response.is_error:
            raise _service_error(service, response)
        return response

    async def _model(
        self,
        model: type[M],
        service: Service,
        method: str,
        path: str,
        **options: Any,
    ) -> M:
        response = await self.request(service, method, path, **options)
        # A newer server may add optional fields (the contract allows it): ignore them here,
        # though the server's own models refuse any field they do not declare.
        return model.model_validate_json(response.content, extra="ignore")

    async def _models(self, model: type[M], service: Service, path: str, **options: Any) -> list[M]:
        response = await self.request(service, "GET", path, **options)
        return [model.model_validate(item, extra="ignore") for item in response.json()]

    async def ready(self, service: Service) -> tuple[bool, dict[str, Any]]:
        """Whether a service reports ready on /readyz, and the checks it reports."""
        client = self._clients[service]
        try:
            response = await client.get("/readyz")
        except httpx.TransportError as error:
            raise ServiceUnreachable(service, str(client.base_url), type(error).__name__) from error
        try:
            report = response.json()
        except ValueError:
            report = {}
        checks = report.get("checks", {}) if isinstance(report, dict) else {}
        return response.status_code == 200, checks

    # ------------------------------------------------------------------ receiving

    async def put_product(self, sku: str, product: ProductRequest) -> ProductView:
        return await self._model(ProductView, "receiving", "PUT", f"/products/{sku}", body=product)

    async def receive(
        self, receipt: ReceiptRequest, *, idempotency_key: str | None = None
    ) -> ReceiptView:
        headers = {"idempotency-key": idempotency_key} if idempotency_key else None
        return await self._model(
            ReceiptView, "receiving", "POST", "/receipts", body=receipt, headers=headers
        )

    async def receive_scan(self, scan: ScanReceiptRequest) -> ReceiptView:
        return await self._model(ReceiptView, "receiving", "POST", "/receipts/scan", body=scan)

    async def find_lots(
        self, *, lot_code: str | None = None, sku: str | None = None, limit: int = 100
    ) -> list[ReceivedLot]:
        params: dict[str, Any] = {"limit": limit}
        if lot_code:
            params["lot_code"] = lot_code
        if sku:
            params["sku"] = sku
        return await self._models(ReceivedLot, "receiving", "/lots", params=params)

    async def lot_by_code(self, lot_code: str, *, sku: str | None = None) -> ReceivedLot:
        """The one lot with this code (of this SKU).

        Raises:
            LotNotFound: receiving has no such lot.
            AmbiguousLotCode: no SKU was given and several products use the code.
        """
        lots = await self.find_lots(lot_code=lot_code, sku=sku, limit=1000)
        if not lots:
            of_sku = f" of {sku}" if sku else ""
            raise LotNotFound(f"receiving knows no lot {lot_code}{of_sku}")
        skus = sorted({lot.sku for lot in lots})
        if len(lots) > 1:
            raise AmbiguousLotCode(lot_code, skus)
        return lots[0]

    # ------------------------------------------------------------------ inventory

    async def stock_lot(self, lot_id: UUID) -> StockLot:
        return await self._model(StockLot, "inventory", "GET", f"/lots/{lot_id}")

    async def stock(self, *, sku: str | None = None, limit: int = 1000) -> list[StockLot]:
        params: dict[str, Any] = {"limit": limit}
        if sku:
            params["sku"] = sku
        return await self._models(StockLot, "inventory", "/stock", params=params)

    async def expiring(self, *, within_days: int = 30) -> list[StockLot]:
        return await self._models(
            StockLot, "inventory", "/lots/expiring", params={"within_days": within_days}
        )

    # ------------------------------------------------------------------ fulfillment

    async def order(self, order_id: str) -> FulfillmentOrder:
        return await self._model(FulfillmentOrder, "fulfillment", "GET", f"/orders/{order_id}")

    async def ship(self, shipment: ShipmentRequest) -> ShipmentView:
        return await self._model(ShipmentView, "fulfillment", "POST", "/shipments", body=shipment)

    # ------------------------------------------------------------------ recall

    async def issue_recall(self, recall: RecallRequest) -> RecallAccepted:
        return await self._model(RecallAccepted, "recall", "POST", "/recalls", body=recall)

    async def recall(
        self, recall_id: str, *, customers_limit: int = 1000, customers_offset: int = 0
    ) -> RecallView:
        return await self._model(
            RecallView,
            "recall",
            "GET",
            f"/recalls/{recall_id}",
            params={"customers_limit": customers_limit, "customers_offset": customers_offset},
        )

    async def write_recall_customers_csv(self, recall_id: str, destination: Path) -> int:
        """Stream the recall's customers CSV into a file; returns the number of data rows."""
        client = self._clients["recall"]
        path = f"/recalls/{recall_id}/customers.csv"
        destination.parent.mkdir(parents=True, exist_ok=True)
        newlines = 0
        try:
            async with client.stream("GET", path) as response:
                if response.is_error:
                    await response.aread()
                    raise _service_error("recall", response)
                with destination.open("wb") as file:
                    async for chunk in response.aiter_bytes():
                        file.write(chunk)
                        newlines += chunk.count(b"\n")
        except httpx.TransportError as error:
            raise ServiceUnreachable(
                "recall", str(client.base_url), type(error).__name__
            ) from error
        return max(newlines - 1, 0)  # the header line

    async def recall_customers_csv(self, recall_id: str) -> str:
        response = await self.request("recall", "GET", f"/recalls/{recall_id}/customers.csv")
        return response.text

    async def trace_forward(self, lot_id: UUID) -> TraceForward:
        return await self._model(TraceForward, "recall", "GET", f"/trace/lots/{lot_id}/forward")

    async def trace_backward(self, lot_id: UUID) -> TraceBackward:
        return await self._model(TraceBackward, "recall", "GET", f"/trace/lots/{lot_id}/backward")

    async def genealogy(self, lot_id: UUID) -> str:
        """The lot's genealogy as a Mermaid flowchart, the lot itself highlighted."""
        response = await self.request("recall", "GET", f"/trace/lots/{lot_id}/genealogy.mmd")
        return response.text


# ---------------------------------------------------------------------- Kafka


def kafka_settings(bootstrap_servers: str | None = None) -> KafkaSettings:
    """The services' Kafka settings (`KAFKA_*`: TLS, SASL), with another bootstrap if given."""
    if bootstrap_servers:
        return KafkaSettings(bootstrap_servers=bootstrap_servers)
    return KafkaSettings()


@asynccontextmanager
async def kafka_producer(settings: KafkaSettings) -> AsyncIterator[AIOKafkaProducer]:
    # Not idempotent: every record sent here is a CloudEvent its consumers de-duplicate by id,
    # and the embedded Tansu broker of `make run` cannot do InitProducerId.
    producer = AIOKafkaProducer(acks="all", enable_idempotence=False, **client_options(settings))
    await producer.start()
    try:
        yield producer
    finally:
        await producer.stop()


# ---------------------------------------------------------------------- dead letters

# Added to a replayed record: where it came from. Replaced, not stacked, on a further replay.
REPLAYED_FROM_HEADER = "lottrace_replayed_from"
# Added by the consumer when the refused value was too large to keep whole.
_NOT_ORIGINAL = frozenset({*DLQ_HEADERS, TRUNCATED_HEADER, REPLAYED_FROM_HEADER})


def dead_letter_topic_of(topic: str) -> str:
    """`order-placed` and `order-placed.dlq` both name the dead-letter topic `order-placed.dlq`."""
    return topic if topic.endswith(DLQ_SUFFIX) else dead_letter_topic(topic)


@dataclass(frozen=True)
class DeadLetter:
    """One entry of a dead-letter topic: the refused record, and why, where from, and who."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...]

    @property
    def written_at(self) -> datetime:
        """When the entry was written to the dead-letter topic (its record timestamp)."""
        return datetime.fromtimestamp(self.timestamp_ms / 1000, UTC)

    def header(self, name: str) -> str | None:
        for header, raw in reversed(self.headers):
            if header == name:
                return raw.decode("utf-8", errors="replace")
        return None

    @property
    def error_type(self) -> str | None:
        return self.header("error_type")

    @property
    def error_message(self) -> str | None:
        return self.header("error_message")

    @property
    def source_topic(self) -> str | None:
        return self.header("source_topic") or (
            self.topic.removesuffix(DLQ_SUFFIX) if self.topic.endswith(DLQ_SUFFIX) else None
        )

    @property
    def source_partition(self) -> int | None:
        return _as_int(self.header("source_partition"))

    @property
    def source_offset(self) -> int | None:
        return _as_int(self.header("source_offset"))

    @property
    def consumer_group(self) -> str | None:
        return self.header("consumer_group")

    @property
    def truncated_from(self) -> int | None:
        """The original value's length, when the entry keeps only its head."""
        return _as_int(self.header(TRUNCATED_HEADER))

    @property
    def source_position(self) -> tuple[str | None, int | None, int | None]:
        return (self.source_topic, self.source_partition, self.source_offset)

    @property
    def position(self) -> str:
        return f"{self.topic}:{self.partition}:{self.offset}"


def _as_int(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def original_headers(headers: Sequence[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
    """The headers the refused record had: those dead-lettering added (why, where from, which
    consumer group, truncation) and the mark of any earlier replay are dropped, in order."""
    return [(name, raw) for name, raw in headers if name not in _NOT_ORIGINAL]


@dataclass(frozen=True)
class ReplayMessage:
    """A dead letter as the record to send again: to its source topic and partition."""

    topic: str
    partition: int | None
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]]
    dead_letter: DeadLetter


class NotReplayable(ValueError):
    """A dead letter that cannot be sent again as it is; the message says why."""


def replay_message(letter: DeadLetter) -> ReplayMessage:
    """The original record of a dead letter: value, key and headers as they were refused,
    plus `lottrace_replayed_from`; to the partition it was read from, so that it is ordered
    among the other events of its key as before.

    Raises:
        NotReplayable: the entry keeps only the head of an oversized value, or names no source.
    """
    if letter.truncated_from is not None:
        raise NotReplayable(
            f"{letter.position} keeps only {len(letter.value)} of the original"
            f" {letter.truncated_from} bytes: have the producer send the event again"
        )
    source = letter.source_topic
    if not source:
        raise NotReplayable(f"{letter.position} names no source topic")
    headers = [
        *original_headers(letter.headers),
        (REPLAYED_FROM_HEADER, letter.position.encode()),
    ]
    return ReplayMessage(
        topic=source,
        partition=letter.source_partition,
        key=letter.key,
        value=letter.value,
        headers=headers,
        dead_letter=letter,
    )


def distinct_records(letters: Sequence[DeadLetter]) -> list[DeadLetter]:
    """One entry per distinct refused record, first seen first.

    Every consumer group of a topic dead-letters on its own, and a replayed record that fails
    again is dead-lettered again: one record may be in a DLQ several times. Sending it once is
    enough, and sending identical copies changes nothing more (an applied event is skipped by
    the inbox; a record that cannot be applied is refused again).
    """
    seen: set[tuple[str | None, bytes | None, bytes, tuple[tuple[str, bytes], ...]]] = set()
    distinct = []
    for letter in letters:
        identity = (
            letter.source_topic,
            letter.key,
            letter.value,
            tuple(original_headers(letter.headers)),
        )
        if identity not in seen:
            seen.add(identity)
            distinct.append(letter)
    return distinct


async def read_dead_letters(
    settings: KafkaSettings, topics: Sequence[str], *, timeout: float = 15.0
) -> tuple[list[DeadLetter], list[str]]:
    """Every entry of the dead-letter topics, oldest first per partition; and the topics that
    do not exist. Reads without a consumer group: no offsets are committed."""
    consumer = AIOKafkaConsumer(
        enable_auto_commit=False, auto_offset_reset="earliest", **client_options(settings)
    )
    await consumer.start()
    try:
        existing = await consumer.topics()
        wanted = [dead_letter_topic_of(topic) for topic in topics]
        missing = [topic for topic in wanted if topic not in existing]
        partitions = [
            TopicPartition(topic, partition)
            for topic in wanted
            if topic in existing
            for partition in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        if not partitions:
            return [], missing
        consumer.assign(partitions)
        letters = await _read_to_end(consumer, partitions, timeout=timeout)
        letters.sort(key=lambda letter: (letter.topic, letter.partition, letter.offset))
        return letters, missing
    finally:
        await consumer.stop()


async def _read_to_end(
    consumer: AIOKafkaConsumer, partitions: Sequence[TopicPartition], *, timeout: float
) -> list[DeadLetter]:
    """Every record of the assigned partitions up to their end offsets as they are now."""
    ends = await consumer.end_offsets(partitions)
    starts = await consumer.beginning_offsets(partitions)
    pending = {tp for tp in partitions if ends[tp] > starts[tp]}
    for tp in partitions:
        consumer.seek(tp, starts[tp])
    letters: list[DeadLetter] = []
    deadline = time.monotonic() + timeout
    while pending:
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"reading {', '.join(sorted({tp.topic for tp in pending}))} took over"
                f" {timeout:.0f}s"
            )
        batch = await consumer.getmany(*pending, timeout_ms=200)
        for tp, records in batch.items():
            letters += [_dead_letter(record) for record in records if record.offset < ends[tp]]
        for tp in list(pending):
            if await consumer.position(tp) >= ends[tp]:
                pending.discard(tp)
    return letters


def _dead_letter(record: ConsumerRecord[bytes, bytes]) -> DeadLetter:
    return DeadLetter(
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        timestamp_ms=record.timestamp,
        key=record.key,
        value=record.value or b"",
        headers=tuple(record.headers),
    )


async def publish_replays(settings: KafkaSettings, messages: Sequence[ReplayMessage]) -> None:
    async with kafka_producer(settings) as producer:
        for message in messages:
            await producer.send_and_wait(
                message.topic,
                value=message.value,
                key=message.key,
                headers=message.headers,
                partition=message.partition,
            )
