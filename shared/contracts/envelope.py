"""CloudEvents 1.0 over Kafka: structured mode produced; structured and binary mode accepted."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any, Generic, Literal, TypeVar, Union

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    create_model,
)

from shared.contracts.events import Event
from shared.contracts.topics import TopicSpec
from shared.ids import new_id
from shared.records import built_from

SPEC_VERSION = "1.0"
STRUCTURED_CONTENT_TYPE = "application/cloudevents+json"
BINARY_HEADER_PREFIX = "ce_"

E = TypeVar("E", bound=Event)


class Envelope(BaseModel):
    """The CloudEvents context attributes; `type` and `data` are set per event type."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    specversion: Literal["1.0"]
    id: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    source: Annotated[str, StringConstraints(min_length=1, max_length=500)]
    time: AwareDatetime | None = None
    subject: Annotated[str, StringConstraints(max_length=200)] | None = None
    datacontenttype: Annotated[str, StringConstraints(max_length=100)] | None = None


def envelope_model(event: type[Event]) -> type[Envelope]:
    """The CloudEvent model of one event type, e.g. `OrderPlacedCloudEvent`."""
    type_field: Any = Literal[event.event_type]  # a literal made at run time, one per type
    return create_model(
        f"{event.__name__}CloudEvent",
        __base__=Envelope,
        __doc__=f"CloudEvent carrying `{event.event_type}`. {event.__doc__ or ''}".strip(),
        type=(type_field, Field(examples=[event.event_type])),
        data=(event, ...),
    )


@dataclass(frozen=True, slots=True)
class Incoming(Generic[E]):
    """One event read from Kafka, parsed and valid."""

    id: str
    source: str
    type: str
    subject: str | None
    time: datetime | None
    data: E
    topic: str
    partition: int
    offset: int
    key: bytes | None

    @classmethod
    def direct(cls, event: E, *, source: str) -> Incoming[E]:
        """`event` as a handler receives it from its topic (a fresh id, partition 0, offset 0),
        for calling a service's handlers without a broker in between: tests, benchmarks."""
        return cls(
            id=new_id(),
            source=source,
            type=event.event_type,
            subject=event.subject(),
            time=None,
            data=event,
            topic=event.topic,
            partition=0,
            offset=0,
            key=None,
        )

    def log_context(self) -> dict[str, Any]:
        """The CloudEvents id and type, and the business ids the event names, for log lines
        about this one event."""
        context: dict[str, Any] = {
            "event_id": self.id,
            "event_type": self.type,
            "subject": self.subject,
        }
        for name in LOGGED_IDS:
            value = getattr(self.data, name, None)
            if value is not None:
                context[name] = str(value)
        return context


# Identifiers an operator searches the logs by.
LOGGED_IDS = ("order_id", "lot_id", "lot_code", "recall_id", "shipment_id", "receipt_id")


@dataclass(frozen=True, slots=True)
class Rejected:
    """A record that is not a valid event of its topic, with the reason it goes to the DLQ."""

    error_type: str
    error_message: str


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    topic: str
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]] = field(default_factory=list)

    @property
    def size(self) -> int:
        """Bytes the broker counts against its message limit: key, value and headers."""
        headers = sum(len(name.encode()) + len(raw) for name, raw in self.headers)
        return len(self.key or b"") + len(self.value) + headers


def encode(
    event: Event,
    *,
    source: str,
    event_id: str | None = None,
    time: datetime | None = None,
) -> OutgoingMessage:
    """The structured-mode Kafka message of an event, with `ce_id`/`ce_type`/`ce_source` headers."""
    event_id = event_id or new_id()
    attributes = {
        "specversion": SPEC_VERSION,
        "id": event_id,
        "type": event.event_type,
        "source": source,
        "time": (time or datetime.now(UTC)).isoformat().replace("+00:00", "Z"),
        "subject": event.subject(),
        "datacontenttype": "application/json",
    }
    head = json.dumps(attributes, separators=(",", ":"), ensure_ascii=False)
    data = event.model_dump_json(exclude_none=True)
    value = f'{head[:-1]},"data":{data}}}'.encode()
    headers = [
        ("content-type", STRUCTURED_CONTENT_TYPE.encode()),
        ("ce_id", event_id.encode()),
        ("ce_type", event.event_type.encode()),
        ("ce_source", source.encode()),
    ]
    return OutgoingMessage(
        topic=event.topic, key=event.key().encode(), value=value, headers=headers
    )


class _TypeOnly(BaseModel):
    """A structured-mode CloudEvent read for its type alone; every other member is skipped."""

    type: str


class TopicDecoder:
    """Parses the records of one topic into typed events, or says why a record is rejected."""

    def __init__(self, topic: TopicSpec) -> None:
        self.topic = topic
        models = tuple(envelope_model(event) for event in topic.events)
        union: Any = models[0] if len(models) == 1 else Union[models]  # noqa: UP007
        tagged: Any = union if len(models) == 1 else Annotated[union, Field(discriminator="type")]
        self._adapter: TypeAdapter[Any] = TypeAdapter(tagged)

    def event_type(
        self,
        *,
        value: bytes | None,
        headers: list[tuple[str, bytes]] | tuple[tuple[str, bytes], ...],
    ) -> str | None:
        """The CloudEvents type a record says it carries, read without validating the event,
        or None when it does not say."""
        if not value:
            return None
        header_map = _by_name(headers)
        if _is_binary_mode(header_map):
            raw = header_map.get(f"{BINARY_HEADER_PREFIX}type")
            return raw.decode(errors="replace") if raw is not None else None
        try:
            return _TypeOnly.model_validate_json(value).type
        except ValidationError:
            return None

    def decode(
        self,
        *,
        value: bytes | None,
        headers: list[tuple[str, bytes]] | tuple[tuple[str, bytes], ...],
        partition: int,
        offset: int,
        key: bytes | None,
    ) -> Incoming[Any] | Rejected:
        if not value:
            return Rejected("malformed_message", "empty message value")
        header_map = _by_name(headers)
        try:
            if _is_binary_mode(header_map):
                envelope = self._adapter.validate_python(_binary_to_dict(header_map, value))
            else:
                envelope = self._adapter.validate_json(value)
        except ValidationError as error:
            return _rejection(error)
        except (ValueError, UnicodeDecodeError) as error:
            return Rejected("malformed_json", str(error)[:500])
        # The CloudEvent's attributes and data, and where on the broker it was read.
        return built_from(
            Incoming, envelope, topic=self.topic.name, partition=partition, offset=offset, key=key
        )


def _by_name(
    headers: list[tuple[str, bytes]] | tuple[tuple[str, bytes], ...],
) -> dict[str, bytes]:
    """Kafka headers by name; CloudEvents header names are case-insensitive."""
    return {name.lower(): raw for name, raw in headers}


def _is_binary_mode(headers: dict[str, bytes]) -> bool:
    content_type = headers.get("content-type", b"").decode(errors="replace")
    if content_type.startswith("application/cloudevents"):
        return False
    return f"{BINARY_HEADER_PREFIX}specversion" in headers


def _binary_to_dict(headers: dict[str, bytes], value: bytes) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        name[len(BINARY_HEADER_PREFIX) :]: raw.decode()
        for name, raw in headers.items()
        if name.startswith(BINARY_HEADER_PREFIX)
    }
    attributes["data"] = json.loads(value)
    return attributes


def _rejection(error: ValidationError) -> Rejected:
    problems = error.errors(include_url=False, include_input=False)
    first = problems[0]
    if first["type"] == "json_invalid":
        return Rejected("malformed_json", f"not valid JSON: {first['msg']}")
    if first["type"] == "union_tag_invalid" or (
        first["type"] == "literal_error" and tuple(first["loc"]) == ("type",)
    ):
        received = error.errors(include_url=False)[0].get("input")
        if isinstance(received, dict):
            received = received.get("type")
        return Rejected(
            "unknown_event_type",
            f"type {str(received)[:200]!r} is not carried by this topic ({first['msg']})",
        )
    detail = "; ".join(
        f"{'.'.join(str(part) for part in problem['loc']) or 'value'}: {problem['msg']}"
        for problem in problems[:5]
    )
    if len(problems) > 5:
        detail += f"; and {len(problems) - 5} more"
    return Rejected("contract_violation", detail[:1000])
