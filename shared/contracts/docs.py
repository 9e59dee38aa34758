"""The published contract documents: an AsyncAPI 3.0 document and one JSON Schema per event.

Both are generated from the pydantic models of `shared.contracts`, so the models stay the
single source of truth; docs/contracts/README.md, the contract page, sits beside them.

Which JSON Schema mode describes an event depends on who writes its topic:

- topics written by lottrace's own services get the *serialization* schema: exactly what
  `encode()` puts on the wire (quantities as decimal strings, fields with a non-null default
  always present), which is what a downstream consumer may rely on;
- topics written upstream (order-placed, order-cancelled) get the *validation* schema:
  everything lottrace accepts (quantities as JSON numbers or decimal strings, defaulted fields
  optional), which is what an upstream producer must conform to.

A validation schema handed to downstream consumers would promise them numbers they never
get; a serialization schema handed to upstream producers would reject the numbers the
contract lets them send.

Run `python -m shared.contracts.docs [out]` (or `lottrace contracts`) to write the files.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue, models_json_schema
from pydantic_core import core_schema

from shared.contracts.envelope import (
    BINARY_HEADER_PREFIX,
    SPEC_VERSION,
    STRUCTURED_CONTENT_TYPE,
    Envelope,
    encode,
    envelope_model,
)
from shared.contracts.events import ALL_EVENTS, Event
from shared.contracts.examples import EXAMPLE_TIME, examples
from shared.contracts.topics import TOPICS, TOPICS_BY_NAME, TopicSpec

SchemaMode = Literal["validation", "serialization"]

ASYNCAPI_VERSION = "3.0.0"
KAFKA_BINDING_VERSION = "0.5.0"
TITLE = "lottrace events"
DEFAULT_OUT = Path("docs/contracts")
COMPONENTS_SCHEMAS = "#/components/schemas/"

PRODUCT_SERVICES = ("receiving", "inventory", "fulfillment", "recall")
"""The services of this product; any other producer or consumer named in TOPICS is external."""

MAX_MESSAGE_BYTES = 900 * 1024
DEAD_LETTER_VALUE = "DeadLetterValue"

DEAD_LETTER_HEADERS: dict[str, str] = {
    "error_type": (
        "Why the record was refused: malformed_message, malformed_json, unknown_event_type, "
        "contract_violation, too_large, rejected (a business rule), processing_failed, or a "
        "more specific code a service names."
    ),
    "error_message": "Human-readable detail, at most 2000 characters.",
    "source_topic": "The topic the record was read from.",
    "source_partition": "Its partition, as a decimal string.",
    "source_offset": "Its offset in that partition, as a decimal string.",
    "consumer_group": "The consumer group that refused it: each group dead-letters on its own.",
}
"""The headers `shared.runtime.consumer.dead_letter` adds, in the order it adds them."""

ERROR_TYPES = (
    "malformed_message",
    "malformed_json",
    "unknown_event_type",
    "contract_violation",
    "too_large",
    "rejected",
    "processing_failed",
)


class ContractJsonSchema(GenerateJsonSchema):
    """pydantic's generator, but a serialization schema marks always-emitted fields required.

    `encode()` drops only None values, so a field whose default is not None is on the wire in
    every event lottrace emits; its consumers may rely on it.
    """

    def field_is_required(
        self,
        field: core_schema.ModelField | core_schema.DataclassField | core_schema.TypedDictField,
        total: bool,
    ) -> bool:
        required = super().field_is_required(field, total)
        if self.mode != "serialization" or required or field["type"] == "typed-dict-field":
            return required
        if field.get("serialization_exclude") or field.get("serialization_exclude_if"):
            return False
        inner: Any = field["schema"]
        if inner["type"] != "default":
            return False
        # Every default_factory of the contract builds a list; none can produce None.
        return "default_factory" in inner or inner.get("default") is not None


# ---------------------------------------------------------------------------- schemas


def schema_mode(topic: TopicSpec) -> SchemaMode:
    """The schema mode that describes what is on `topic` (see the module docstring)."""
    return "serialization" if topic.producer in PRODUCT_SERVICES else "validation"


def _mode_of(event: type[Event]) -> SchemaMode:
    return schema_mode(TOPICS_BY_NAME[event.topic])


def _mode_comment(mode: SchemaMode) -> str:
    if mode == "serialization":
        return (
            "Serialization schema: exactly what lottrace emits. Quantities are decimal strings; "
            "fields with a default are always present."
        )
    return (
        "Validation schema: everything lottrace accepts. Quantities may be JSON numbers or "
        "decimal strings; fields with a default may be left out."
    )


@cache
def _cloud_event(event: type[Event]) -> type[Envelope]:
    # One class per event type: two classes of one name would be told apart by pydantic
    # with module-qualified names in components/schemas.
    return envelope_model(event)


def schema_name(event: type[Event]) -> str:
    """The file-friendly name of an event's schema: its CloudEvents type."""
    return event.event_type


def json_schemas() -> dict[str, dict[str, Any]]:
    """The JSON Schema of the full CloudEvent of every event type, keyed by its type."""
    schemas: dict[str, dict[str, Any]] = {}
    for event in ALL_EVENTS:
        mode = _mode_of(event)
        schema = _cloud_event(event).model_json_schema(
            mode=mode, schema_generator=ContractJsonSchema
        )
        schemas[schema_name(event)] = {
            "$schema": ContractJsonSchema.schema_dialect,
            "$comment": _mode_comment(mode),
            **schema,
        }
    return schemas


def _component_schemas() -> dict[str, JsonSchemaValue]:
    models = [(_cloud_event(event), _mode_of(event)) for event in ALL_EVENTS]
    _, definitions = models_json_schema(
        models,
        ref_template=COMPONENTS_SCHEMAS + "{model}",
        schema_generator=ContractJsonSchema,
    )
    schemas: dict[str, JsonSchemaValue] = dict(definitions.get("$defs", {}))
    for event in ALL_EVENTS:
        schemas[_cloud_event(event).__name__]["$comment"] = _mode_comment(_mode_of(event))
    if DEAD_LETTER_VALUE in schemas:
        raise ValueError(f"a contract model is named {DEAD_LETTER_VALUE}, which the DLQ uses")
    schemas[DEAD_LETTER_VALUE] = {
        "title": DEAD_LETTER_VALUE,
        "description": (
            "The refused record's value, byte for byte: usually a CloudEvent of the source "
            "topic, but it may be malformed JSON or not JSON at all."
        ),
    }
    return schemas


# ---------------------------------------------------------------------------- examples


ExampleMessage = tuple[str, dict[str, str], dict[str, Any]]
"""A named example: its name, its Kafka headers and its value as JSON."""


def example_source(topic: TopicSpec) -> str:
    """A CloudEvents `source` of the topic's producer, as it would appear on the wire."""
    if topic.producer in PRODUCT_SERVICES:
        return f"/lottrace/{topic.producer}"
    return "/oms/eu-1"


def _example_messages(event: type[Event]) -> list[ExampleMessage]:
    topic = TOPICS_BY_NAME[event.topic]
    found = []
    for number, (name, sample) in enumerate(examples(), start=1):
        if type(sample) is not event:
            continue
        message = encode(
            sample,
            source=example_source(topic),
            event_id=f"0193a6d2-7c1e-7b7e-9a51-3c0f2f0d9a{number:02d}",
            time=EXAMPLE_TIME,
        )
        headers = {header: raw.decode() for header, raw in message.headers}
        found.append((name, headers, json.loads(message.value)))
    return found


# ---------------------------------------------------------------------------- AsyncAPI


def _slug(actor: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", actor.lower()).strip("-")


def _camel(topic: str) -> str:
    return "".join(part.capitalize() for part in re.split(r"[^A-Za-z0-9]+", topic) if part)


def _is_ours(actor: str) -> bool:
    return actor in PRODUCT_SERVICES


def _summary(event: type[Event]) -> str:
    return (event.__doc__ or event.event_type).strip().splitlines()[0]


def _key_schema(topic: TopicSpec, schemas: dict[str, JsonSchemaValue], *, dlq: bool) -> Any:
    if dlq:
        # A refused record may carry any key, or none: it is copied, not checked.
        return {
            "description": f"The source record's key, unchanged: normally the `{topic.key}` "
            "of its event, but whatever the refused record had."
        }
    data_ref = schemas[_cloud_event(topic.events[0]).__name__]["properties"]["data"]["$ref"]
    field = schemas[data_ref.removeprefix(COMPONENTS_SCHEMAS)]["properties"][topic.key]
    key = {name: value for name, value in field.items() if name not in ("title", "default")}
    key["description"] = (
        f"The `{topic.key}` of the event's data, UTF-8; all events of one {topic.key} share "
        "a partition, so their order holds."
    )
    return key


def _kafka_message_binding(key: Any) -> dict[str, Any]:
    return {"kafka": {"key": key, "bindingVersion": KAFKA_BINDING_VERSION}}


def _structured_headers(event: type[Event], topic: TopicSpec) -> dict[str, Any]:
    headers: dict[str, Any] = {
        "type": "object",
        "properties": {
            "content-type": {"type": "string", "const": STRUCTURED_CONTENT_TYPE},
            f"{BINARY_HEADER_PREFIX}id": {
                "type": "string",
                "description": "The CloudEvent's `id`, so routers can filter without parsing.",
            },
            f"{BINARY_HEADER_PREFIX}type": {"type": "string", "const": event.event_type},
            f"{BINARY_HEADER_PREFIX}source": {
                "type": "string",
                "description": "The CloudEvent's `source`.",
            },
        },
    }
    if _is_ours(topic.producer):
        headers["required"] = sorted(headers["properties"])
        headers["description"] = "lottrace's producers always set these headers."
    else:
        headers["description"] = "Optional for upstream producers; the value decides."
    return headers


def _binary_headers(event: type[Event]) -> dict[str, Any]:
    prefix = BINARY_HEADER_PREFIX
    return {
        "type": "object",
        "description": "CloudEvents binary mode: the context attributes as `ce_` headers.",
        "properties": {
            "content-type": {
                "type": "string",
                "examples": ["application/json"],
                "description": "The content type of the `data`; application/cloudevents* "
                "would mean structured mode.",
            },
            f"{prefix}specversion": {"type": "string", "const": SPEC_VERSION},
            f"{prefix}id": {"type": "string", "minLength": 1, "maxLength": 200},
            f"{prefix}type": {"type": "string", "const": event.event_type},
            f"{prefix}source": {"type": "string", "minLength": 1, "maxLength": 500},
            f"{prefix}time": {
                "type": "string",
                "format": "date-time",
                "description": "RFC 3339 with offset.",
            },
            f"{prefix}subject": {"type": "string", "maxLength": 200},
        },
        "required": [f"{prefix}id", f"{prefix}source", f"{prefix}specversion", f"{prefix}type"],
    }


def _binary_example_headers(payload: dict[str, Any]) -> dict[str, Any]:
    return {
        "content-type": "application/json",
        **{
            f"{BINARY_HEADER_PREFIX}{attribute}": payload[attribute]
            for attribute in ("specversion", "id", "type", "source", "time")
        },
        f"{BINARY_HEADER_PREFIX}subject": payload["subject"],
    }


@dataclass(frozen=True)
class _Mode:
    """A CloudEvents mode as a message documents it: its content type, and how an example's
    headers and value are made from a sample's structured headers and payload."""

    name: str
    content_type: str
    example: Callable[[dict[str, Any], dict[str, Any]], tuple[dict[str, Any], Any]]
    description: str | None = None


_STRUCTURED = _Mode(
    "structured", STRUCTURED_CONTENT_TYPE, lambda headers, payload: (headers, payload)
)
_BINARY = _Mode(
    "binary",
    "application/json",
    lambda _, payload: (_binary_example_headers(payload), payload["data"]),
    description="The same event in CloudEvents binary mode: `ce_*` headers, "
    "the `data` alone as the value.",
)


def _message(
    event: type[Event],
    mode: _Mode,
    key: Any,
    samples: list[ExampleMessage],
    *,
    headers: dict[str, Any],
    payload: dict[str, Any],
) -> dict[str, Any]:
    """One message of a topic: `event` in CloudEvents `mode`, with an example per sample."""
    examples = [(name, *mode.example(shown, sent)) for name, shown, sent in samples]
    return {
        "name": event.event_type,
        "title": f"{event.event_type} ({mode.name} mode)",
        "summary": _summary(event),
        **({"description": mode.description} if mode.description is not None else {}),
        "contentType": mode.content_type,
        "headers": headers,
        "payload": payload,
        "bindings": _kafka_message_binding(key),
        "examples": [
            {"name": name, "headers": shown, "payload": sent} for name, shown, sent in examples
        ],
    }


def _messages(topic: TopicSpec, schemas: dict[str, JsonSchemaValue]) -> dict[str, Any]:
    """The topic's messages by id: its producers send, and its consumers accept, each one."""
    messages: dict[str, Any] = {}
    key = _key_schema(topic, schemas, dlq=False)
    for event in topic.events:
        samples = _example_messages(event)
        messages[event.__name__] = _message(
            event,
            _STRUCTURED,
            key,
            samples,
            headers=_structured_headers(event, topic),
            payload={"$ref": COMPONENTS_SCHEMAS + _cloud_event(event).__name__},
        )
        if _is_ours(topic.producer):
            continue
        # Only upstream producers use binary mode; lottrace's own producers never do.
        data_ref = schemas[_cloud_event(event).__name__]["properties"]["data"]["$ref"]
        messages[f"{event.__name__}Binary"] = _message(
            event, _BINARY, key, samples, headers=_binary_headers(event), payload={"$ref": data_ref}
        )
    return messages


def _dead_letter_message(topic: TopicSpec, schemas: dict[str, JsonSchemaValue]) -> dict[str, Any]:
    consumers = [consumer for consumer in topic.consumers if _is_ours(consumer)]
    properties: dict[str, Any] = {
        name: {"type": "string", "description": description}
        for name, description in DEAD_LETTER_HEADERS.items()
    }
    properties["error_type"]["examples"] = list(ERROR_TYPES)
    properties["error_message"]["maxLength"] = 2000
    properties["source_topic"]["const"] = topic.name
    properties["source_partition"]["pattern"] = "^[0-9]+$"
    properties["source_offset"]["pattern"] = "^[0-9]+$"
    properties["consumer_group"]["examples"] = consumers
    return {
        "name": topic.dlq,
        "title": f"A record refused on {topic.name}",
        "summary": f"A copy of a record of `{topic.name}` that could not be parsed or broke "
        "the contract, with the reason.",
        "description": "Key, value and headers are the source record's; the dead-letter "
        "headers are added (replacing any of the same name).",
        "headers": {
            "type": "object",
            "description": "The dead-letter headers; the source record's other headers "
            "(`content-type`, `ce_*`) are kept.",
            "properties": properties,
            "required": list(DEAD_LETTER_HEADERS),
        },
        "payload": {"$ref": COMPONENTS_SCHEMAS + DEAD_LETTER_VALUE},
        "bindings": _kafka_message_binding(_key_schema(topic, schemas, dlq=True)),
    }


def _channel_description(topic: TopicSpec) -> str:
    types = ", ".join(f"`{event.event_type}`" for event in topic.events)
    return (
        f"{topic.description}\n\nCarries {types}. Key: `{topic.key}`. "
        f"Written by {topic.producer}; read by {', '.join(topic.consumers)}. "
        f"{_mode_comment(schema_mode(topic))}"
    )


def _operation(
    actor: str, action: Literal["send", "receive"], channel: str, message_ids: Sequence[str]
) -> dict[str, Any]:
    outside = "" if _is_ours(actor) or actor == "operators" else " (outside lottrace)"
    operation: dict[str, Any] = {
        "action": action,
        "channel": {"$ref": f"#/channels/{channel}"},
        "title": f"{actor[0].upper()}{actor[1:]}{outside}: {action} {channel}",
        "messages": [{"$ref": f"#/channels/{channel}/messages/{mid}"} for mid in message_ids],
        "tags": [{"name": actor}],
    }
    if action == "receive" and _is_ours(actor):
        operation["bindings"] = {
            "kafka": {
                "groupId": {"type": "string", "const": actor},
                "bindingVersion": KAFKA_BINDING_VERSION,
            }
        }
    return operation


def _package_version() -> str:
    try:
        return metadata.version("lottrace")
    except metadata.PackageNotFoundError:
        return "1.0.0"


INFO_DESCRIPTION = f"""\
The Kafka topics of lottrace, a lot-tracking platform, and the CloudEvents 1.0 they carry.

- **At-least-once delivery.** An event may arrive more than once; consumers de-duplicate on \
(`source`, `id`), so a re-delivered or re-sent event changes nothing the second time.
- **Ordering by key.** Each topic has its message key (see the channel); all events of one key \
are on one partition, so their order holds.
- **Structured mode produced, structured and binary mode accepted.** lottrace's producers \
write the whole CloudEvent as the value (`content-type: {STRUCTURED_CONTENT_TYPE}`) and also \
set the `ce_id`, `ce_type` and `ce_source` headers so routers can filter without parsing. \
Consumers also accept binary mode (`ce_*` headers, the `data` alone as the value).
- **Size.** No message exceeds 900 KB ({MAX_MESSAGE_BYTES} bytes, value and headers); a \
customer with very many shipments gets several recall notices.
- **Dead letters.** A record that cannot be parsed or violates the contract is neither retried \
forever nor dropped: it goes to `<topic>.dlq` with the reason in its headers, and consumption \
goes on.
- **Schemas.** Topics written by lottrace are described by the serialization schema, exactly \
what lottrace emits (quantities as decimal strings, defaulted fields always present); topics \
written upstream by the validation schema, everything lottrace accepts (quantities as JSON \
numbers or decimal strings, defaulted fields optional).
"""


def _channel(address: str, description: str, message_ids: Sequence[str]) -> dict[str, Any]:
    return {
        "address": address,
        "title": address,
        "description": description,
        "messages": {mid: {"$ref": f"#/components/messages/{mid}"} for mid in message_ids},
        "bindings": {"kafka": {"topic": address, "bindingVersion": KAFKA_BINDING_VERSION}},
    }


def _dead_letter_description(topic: TopicSpec) -> str:
    return (
        f"Dead letters of `{topic.name}`: records a consumer could not parse or that "
        "broke the contract, with the reason in their headers. Written by each "
        "consuming service of lottrace on its own; read by operators."
    )


def _topic_operations(topic: TopicSpec, message_ids: list[str]) -> dict[str, Any]:
    operations = {
        f"{_slug(topic.producer)}.send.{topic.name}": _operation(
            topic.producer, "send", topic.name, message_ids
        )
    }
    for consumer in topic.consumers:
        operations[f"{_slug(consumer)}.receive.{topic.name}"] = _operation(
            consumer, "receive", topic.name, message_ids
        )
    return operations


def _dead_letter_operations(topic: TopicSpec, dead_letter_id: str) -> dict[str, Any]:
    operations = {
        f"{consumer}.send.{topic.dlq}": _operation(consumer, "send", topic.dlq, [dead_letter_id])
        for consumer in topic.consumers
        if _is_ours(consumer)
    }
    operations[f"operators.receive.{topic.dlq}"] = _operation(
        "operators", "receive", topic.dlq, [dead_letter_id]
    )
    return operations


def asyncapi_document() -> dict[str, Any]:
    """The AsyncAPI 3.0.0 document of every topic, dead-letter topics included."""
    schemas = _component_schemas()
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for topic in TOPICS:
        topic_messages = _messages(topic, schemas)
        messages.update(topic_messages)
        channels[topic.name] = _channel(
            topic.name, _channel_description(topic), list(topic_messages)
        )
        operations.update(_topic_operations(topic, list(topic_messages)))
        dead_letter_id = f"{_camel(topic.name)}DeadLetter"
        messages[dead_letter_id] = _dead_letter_message(topic, schemas)
        channels[topic.dlq] = _channel(topic.dlq, _dead_letter_description(topic), [dead_letter_id])
        operations.update(_dead_letter_operations(topic, dead_letter_id))
    return _document(schemas, channels, operations, messages)


def _document(
    schemas: dict[str, JsonSchemaValue],
    channels: dict[str, Any],
    operations: dict[str, Any],
    messages: dict[str, Any],
) -> dict[str, Any]:
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": TITLE,
            "version": _package_version(),
            "description": INFO_DESCRIPTION,
            "license": {"name": "Apache-2.0"},
            "tags": [{"name": service} for service in PRODUCT_SERVICES],
        },
        "defaultContentType": STRUCTURED_CONTENT_TYPE,
        "servers": {
            "local": {
                "host": "127.0.0.1:9092",
                "protocol": "kafka",
                "description": "The embedded broker of `lottrace dev`.",
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {"schemas": schemas, "messages": messages},
    }


# ---------------------------------------------------------------------------- files


def _json_text(document: Any) -> str:
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def _yaml_text(document: Any) -> str:
    # A fresh copy from JSON shares no objects, so the YAML has no anchors or aliases.
    fresh = json.loads(json.dumps(document))
    return yaml.safe_dump(fresh, sort_keys=True, allow_unicode=True, width=100)


def write_documents(out: Path) -> list[Path]:
    """Write asyncapi.json, asyncapi.yaml and schemas/<type>.json under `out`; same input,
    same bytes. Returns the paths written."""
    document = asyncapi_document()
    files: dict[Path, str] = {
        out / "asyncapi.json": _json_text(document),
        out / "asyncapi.yaml": _yaml_text(document),
    }
    for name, schema in sorted(json_schemas().items()):
        files[out / "schemas" / f"{name}.json"] = _json_text(schema)
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8", newline="\n")
    return list(files)


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if len(arguments) > 1:
        print("usage: python -m shared.contracts.docs [out]", file=sys.stderr)
        return 2
    out = Path(arguments[0]) if arguments else DEFAULT_OUT
    for path in write_documents(out):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
