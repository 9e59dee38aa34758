"""The published AsyncAPI and JSON Schema documents describe the contract of CONTRACTS.md.

`jsonschema` is not installed in this project, so a small validator below checks instances
against the keyword subset pydantic generates, and refuses any keyword it does not know, so
a schema can never pass by being misunderstood.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
import yaml

from shared.contracts import events
from shared.contracts.docs import (
    DEAD_LETTER_HEADERS,
    PRODUCT_SERVICES,
    asyncapi_document,
    json_schemas,
    schema_mode,
    write_documents,
)
from shared.contracts.envelope import encode
from shared.contracts.events import ALL_EVENTS, EVENTS_BY_TYPE
from shared.contracts.examples import examples
from shared.contracts.topics import TOPICS, TOPICS_BY_NAME, all_topic_names
from shared.contracts.types import Customer

COMMITTED = Path(__file__).resolve().parents[2] / "docs" / "contracts"
TIME = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
LOT = UUID("0193a6c0-0000-7000-8000-00000000000a")


# ---------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return asyncapi_document()


@pytest.fixture(scope="module")
def schemas() -> dict[str, dict[str, Any]]:
    return json_schemas()


def minimal_events() -> list[events.Event]:
    """One event of every type with only the fields the models require."""
    customer = Customer(customer_id="C-1")
    return [
        events.OrderPlaced(
            order_id="SO-1",
            customer=customer,
            lines=[events.OrderLine(line_no=1, sku="X", quantity=Decimal("1.5"))],
        ),
        events.OrderCancelled(order_id="SO-1"),
        events.GoodsReceived(
            receipt_id="R-1",
            lot_id=LOT,
            lot_code="X-1",
            sku="X",
            quantity=Decimal("0.000001"),
            received_at=TIME,
        ),
        events.LotAllocated(order_id="SO-1", customer_id="C-1"),
        events.OrderShipped(
            shipment_id="SH-1",
            order_id="SO-1",
            customer=customer,
            shipped_at=TIME,
            lines=[
                events.ShipmentLine(
                    line_no=1, sku="X", lot_id=LOT, lot_code="X-1", quantity=Decimal(1)
                )
            ],
        ),
        events.RecallIssued(
            recall_id="RC-1",
            issued_at=TIME,
            reason="test",
            scope=events.RecallScope(sku="X"),
            affected_customer_count=0,
            shipped_quantity=Decimal(0),
        ),
        events.RecallCustomerNotice(
            recall_id="RC-1",
            customer=customer,
            shipments=[
                events.NoticeShipment(
                    shipment_id="SH-1",
                    order_id="SO-1",
                    shipped_at=TIME,
                    sku="X",
                    lot_id=LOT,
                    lot_code="X-1",
                    quantity=Decimal(3),
                )
            ],
        ),
    ]


SAMPLES = [pytest.param(event, id=f"{name} ({event.event_type})") for name, event in examples()] + [
    pytest.param(event, id=f"required fields only ({event.event_type})")
    for event in minimal_events()
]


def wire_value(event: events.Event) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(
        encode(event, source="/test", event_id="e-1", time=TIME).value
    )
    return value


# ---------------------------------------------------------------------------- a small validator

ANNOTATIONS = {"title", "description", "default", "examples", "$comment", "$schema", "$defs"}
TYPES: dict[str, Any] = {
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
}


def _format_ok(name: str, value: str) -> bool:
    try:
        if name == "date":
            return bool(re.fullmatch(r"\d{4}-\d{2}-\d{2}", value)) and bool(
                date.fromisoformat(value)
            )
        if name == "date-time":
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
            return "T" in value and parsed.tzinfo is not None
        if name == "uuid":
            return str(UUID(value)) == value.lower()
    except ValueError:
        return False
    raise AssertionError(f"unsupported format {name}")


def resolve(root: Any, ref: str) -> Any:
    assert ref.startswith("#/"), f"{ref} points outside the document"
    node = root
    for escaped in ref[2:].split("/"):
        part = escaped.replace("~1", "/").replace("~0", "~")
        assert isinstance(node, dict), f"{ref}: {part} is not inside an object"
        assert part in node, f"{ref} does not resolve: no {part!r}"
        node = node[part]
    return node


def errors(instance: Any, schema: Any, root: Any, where: str = "$") -> list[str]:
    """Why `instance` is not valid against `schema` (refs resolved in `root`); [] if it is."""
    found: list[str] = []
    for keyword, expected in schema.items():
        if keyword in ANNOTATIONS:
            continue
        if keyword == "$ref":
            found += errors(instance, resolve(root, expected), root, where)
        elif keyword == "anyOf":
            if all(errors(instance, option, root, where) for option in expected):
                found.append(f"{where}: matches no option of anyOf")
        elif keyword == "type":
            if not TYPES[expected](instance):
                found.append(f"{where}: {instance!r} is not of type {expected}")
        elif keyword == "const":
            if instance != expected or type(instance) is not type(expected):
                found.append(f"{where}: {instance!r} is not {expected!r}")
        elif keyword == "enum":
            if instance not in expected:
                found.append(f"{where}: {instance!r} is not one of {expected}")
        elif keyword == "required":
            if isinstance(instance, dict):
                found += [
                    f"{where}: {name} is missing" for name in expected if name not in instance
                ]
        elif keyword == "properties":
            if isinstance(instance, dict):
                for name, sub in expected.items():
                    if name in instance:
                        found += errors(instance[name], sub, root, f"{where}.{name}")
        elif keyword == "items":
            if isinstance(instance, list):
                for index, item in enumerate(instance):
                    found += errors(item, expected, root, f"{where}[{index}]")
        elif keyword in ("minItems", "minLength"):
            if isinstance(instance, list | str) and len(instance) < expected:
                found.append(f"{where}: shorter than {expected}")
        elif keyword in ("maxItems", "maxLength"):
            if isinstance(instance, list | str) and len(instance) > expected:
                found.append(f"{where}: longer than {expected}")
        elif keyword == "pattern":
            if isinstance(instance, str) and not re.search(expected, instance):
                found.append(f"{where}: {instance!r} does not match {expected}")
        elif keyword == "format":
            if isinstance(instance, str) and not _format_ok(expected, instance):
                found.append(f"{where}: {instance!r} is not a {expected}")
        elif keyword in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
            if TYPES["number"](instance):
                low = keyword.endswith("inimum")
                exclusive = keyword.startswith("exclusive")
                bad = (
                    (instance < expected or (exclusive and instance == expected))
                    if low
                    else (instance > expected or (exclusive and instance == expected))
                )
                if bad:
                    found.append(f"{where}: {instance!r} breaks {keyword} {expected}")
        else:
            raise AssertionError(f"{where}: the test validator does not know {keyword!r}")
    return found


def refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from refs(item)


def inline(node: Any, root: Any) -> Any:
    """The schema with every $ref replaced by what it points at (the contract has no cycles)."""
    if isinstance(node, dict):
        if "$ref" in node:
            return inline(resolve(root, node["$ref"]), root)
        return {key: inline(value, root) for key, value in node.items() if key != "$defs"}
    if isinstance(node, list):
        return [inline(item, root) for item in node]
    return node


def data_schema(schema: dict[str, Any], root: Any) -> dict[str, Any]:
    data: dict[str, Any] = inline(schema, root)["properties"]["data"]
    return data


def step(schema: dict[str, Any], part: str) -> dict[str, Any]:
    """The schema of property `part` ("name" or "name[]" for its items), optionals unwrapped."""
    name, is_list = part.removesuffix("[]"), part.endswith("[]")
    node: dict[str, Any] = schema["properties"][name]
    if "anyOf" in node:
        (node,) = [option for option in node["anyOf"] if option.get("type") != "null"]
    if is_list:
        node = node["items"]
    return node


def at(schema: dict[str, Any], path: str) -> dict[str, Any]:
    for part in filter(None, path.split(".")):
        schema = step(schema, part)
    return schema


# ---------------------------------------------------------------------------- the contract

CUSTOMER = ["customer_id", "name", "email", "phone", "address"]
ADDRESS = ["line1", "line2", "city", "region", "postal_code", "country"]
RECALL_ISSUED = [
    "recall_id",
    "issued_at",
    "reason",
    "classification",
    "scope",
    "affected_lots",
    "affected_customer_count",
    "shipped_quantity",
]
# A lot's attributes as goods-received carries them; lot-registered carries the same.
LOT_ATTRIBUTES = [
    "uom",
    "location",
    "received_at",
    "supplier",
    "supplier_lot_code",
    "purchase_order",
    "production_date",
    "expiry_date",
    "best_before_date",
    "unit_cost",
]
LOT_PARTS = {"supplier": ["supplier_id", "name"], "unit_cost": ["amount", "currency"]}
ENVELOPE = ["specversion", "id", "type", "source", "time", "subject", "datacontenttype", "data"]

CONTRACT_FIELDS: dict[str, dict[str, list[str]]] = {
    "lottrace.order-placed.v1": {
        "": ["order_id", "customer", "lines", "min_remaining_shelf_life_days", "placed_at"],
        "lines[]": ["line_no", "sku", "quantity", "uom"],
        "customer": CUSTOMER,
        "customer.address": ADDRESS,
    },
    "lottrace.order-cancelled.v1": {"": ["order_id", "reason"]},
    "lottrace.goods-received.v1": {
        "": [
            "receipt_id",
            "lot_id",
            "lot_code",
            "sku",
            "gtin",
            "quantity",
            *LOT_ATTRIBUTES,
            "inputs",
            "qc_required",
        ],
        **LOT_PARTS,
        "inputs[]": ["lot_id", "lot_code", "sku", "quantity", "uom"],
    },
    "lottrace.lot-allocated.v1": {
        "": ["order_id", "customer_id", "allocations", "backordered", "strategy"],
        "allocations[]": [
            "line_no",
            "sku",
            "lot_id",
            "lot_code",
            "quantity",
            "uom",
            "expiry_date",
            "location",
        ],
        "backordered[]": ["line_no", "sku", "quantity", "uom", "reason"],
    },
    "lottrace.order-shipped.v1": {
        "": ["shipment_id", "order_id", "customer", "shipped_at", "lines", "imported"],
        "lines[]": ["line_no", "sku", "lot_id", "lot_code", "quantity", "uom"],
        "customer": CUSTOMER,
        "customer.address": ADDRESS,
    },
    "lottrace.recall-issued.v1": {
        "": RECALL_ISSUED,
        "scope": [
            "lot_ids",
            "lot_codes",
            "sku",
            "supplier_id",
            "received_from",
            "received_to",
            "supplier_lot_codes",
            "gtin",
        ],
        "affected_lots[]": ["lot_id", "lot_code", "sku", "supplier_id", "via_lot_id"],
    },
    "lottrace.recall-customer-notice.v1": {
        "": ["recall_id", "customer", "shipments", "late", "reminder"],
        "shipments[]": [
            "shipment_id",
            "order_id",
            "shipped_at",
            "sku",
            "lot_id",
            "lot_code",
            "quantity",
            "uom",
        ],
        "customer": CUSTOMER,
        "customer.address": ADDRESS,
    },
    "lottrace.goods-returned.v1": {
        "": [
            "return_id",
            "customer",
            "order_id",
            "shipment_id",
            "recall_id",
            "returned_at",
            "lines",
        ],
        "lines[]": [
            "line_no",
            "sku",
            "lot_id",
            "lot_code",
            "quantity",
            "uom",
            "reason",
            "condition",
        ],
        "customer": CUSTOMER,
    },
    "lottrace.recall-response.v1": {
        "": [
            "response_id",
            "recall_id",
            "customer_id",
            "responded_at",
            "kind",
            "channel",
            "units",
            "note",
        ],
        "units[]": ["lot_id", "lot_code", "on_hand", "destroyed", "returned"],
    },
    "lottrace.lot-status-changed.v1": {
        "": [
            "lot_id",
            "lot_code",
            "sku",
            "status",
            "previous_status",
            "reason",
            "changed_at",
            "actor",
        ],
    },
    "lottrace.lot-moved.v1": {
        # A lottrace addition beyond v1.1, as docs/contracts/README.md states it.
        "": [
            "movement_id",
            "lot_id",
            "lot_code",
            "sku",
            "gtin",
            "kind",
            "quantity",
            "uom",
            "from_location",
            "to_location",
            "supplier_id",
            "rma",
            "reason",
            "moved_at",
            "actor",
        ],
    },
    "lottrace.lot-registered.v1": {
        # A lottrace addition beyond v1.1, as docs/contracts/README.md states it.
        "": [
            "registration_id",
            "lot_id",
            "lot_code",
            "sku",
            "gtin",
            *LOT_ATTRIBUTES,
            "reason",
        ],
        **LOT_PARTS,
    },
}

CONTRACT_REQUIRED: dict[str, list[str]] = {
    # Fields the contract does not mark optional. Upstream topics are described by what
    # lottrace accepts, so defaulted fields (uom) are optional there.
    "lottrace.order-placed.v1": ["order_id", "customer", "lines"],
    "lottrace.order-cancelled.v1": ["order_id"],
    "lottrace.goods-received.v1": [
        "receipt_id",
        "lot_id",
        "lot_code",
        "sku",
        "quantity",
        "uom",
        "location",
        "received_at",
        "inputs",
    ],
    "lottrace.lot-allocated.v1": [
        "order_id",
        "customer_id",
        "allocations",
        "backordered",
        "strategy",
    ],
    "lottrace.order-shipped.v1": ["shipment_id", "order_id", "customer", "shipped_at", "lines"],
    "lottrace.recall-issued.v1": RECALL_ISSUED,  # every field
    "lottrace.recall-customer-notice.v1": ["recall_id", "customer", "shipments", "late"],
    "lottrace.goods-returned.v1": ["return_id", "customer", "returned_at", "lines"],
    "lottrace.recall-response.v1": [
        "response_id",
        "recall_id",
        "customer_id",
        "responded_at",
        "kind",
    ],
    "lottrace.lot-status-changed.v1": [
        "lot_id",
        "lot_code",
        "sku",
        "status",
        "previous_status",
        "reason",
        "changed_at",
    ],
    "lottrace.lot-moved.v1": [
        "movement_id",
        "lot_id",
        "lot_code",
        "sku",
        "kind",
        "quantity",
        "from_location",
        "moved_at",
    ],
    "lottrace.lot-registered.v1": ["registration_id", "lot_id", "lot_code", "sku", "received_at"],
}

TIMESTAMPS = {
    "lottrace.order-placed.v1": ["placed_at"],
    "lottrace.goods-received.v1": ["received_at"],
    "lottrace.order-shipped.v1": ["shipped_at"],
    "lottrace.recall-issued.v1": ["issued_at"],
    "lottrace.recall-customer-notice.v1": ["shipments[].shipped_at"],
    "lottrace.goods-returned.v1": ["returned_at"],
    "lottrace.recall-response.v1": ["responded_at"],
    "lottrace.lot-status-changed.v1": ["changed_at"],
    "lottrace.lot-moved.v1": ["moved_at"],
    "lottrace.lot-registered.v1": ["received_at"],
}
DATES = {
    "lottrace.goods-received.v1": ["production_date", "expiry_date", "best_before_date"],
    "lottrace.lot-allocated.v1": ["allocations[].expiry_date"],
    "lottrace.recall-issued.v1": ["scope.received_from", "scope.received_to"],
    "lottrace.lot-registered.v1": ["production_date", "expiry_date", "best_before_date"],
}
UUIDS = {
    "lottrace.goods-received.v1": ["lot_id", "inputs[].lot_id"],
    "lottrace.lot-allocated.v1": ["allocations[].lot_id"],
    "lottrace.order-shipped.v1": ["lines[].lot_id"],
    "lottrace.recall-issued.v1": ["affected_lots[].lot_id", "affected_lots[].via_lot_id"],
    "lottrace.recall-customer-notice.v1": ["shipments[].lot_id"],
    "lottrace.goods-returned.v1": ["lines[].lot_id"],
    "lottrace.recall-response.v1": ["units[].lot_id"],
    "lottrace.lot-status-changed.v1": ["lot_id"],
    "lottrace.lot-moved.v1": ["lot_id"],
    "lottrace.lot-registered.v1": ["lot_id"],
}
QUANTITIES = {
    "lottrace.order-placed.v1": ["lines[].quantity"],
    "lottrace.goods-received.v1": ["quantity", "inputs[].quantity"],
    "lottrace.lot-allocated.v1": ["allocations[].quantity", "backordered[].quantity"],
    "lottrace.order-shipped.v1": ["lines[].quantity"],
    "lottrace.recall-issued.v1": ["shipped_quantity"],
    "lottrace.recall-customer-notice.v1": ["shipments[].quantity"],
    "lottrace.goods-returned.v1": ["lines[].quantity"],
    "lottrace.recall-response.v1": ["units[].on_hand", "units[].destroyed", "units[].returned"],
    "lottrace.lot-moved.v1": ["quantity"],
}


def _kinds(schema: dict[str, Any]) -> set[tuple[str, str | None]]:
    options = schema.get("anyOf", [schema])
    return {(o["type"], o.get("format")) for o in options if o.get("type") != "null"}


def _field(data: dict[str, Any], path: str) -> dict[str, Any]:
    *parents, name = path.split(".")
    field: dict[str, Any] = at(data, ".".join(parents))["properties"][name]
    return field


# ---------------------------------------------------------------------------- tests


@pytest.mark.parametrize("event", ALL_EVENTS, ids=lambda event: event.event_type)
def test_every_event_type_has_a_schema_and_a_message_on_its_channel(
    event: type[events.Event], document: dict[str, Any], schemas: dict[str, dict[str, Any]]
) -> None:
    schema = schemas[event.event_type]
    assert schema["properties"]["type"]["const"] == event.event_type

    channel = document["channels"][event.topic]
    assert channel["address"] == event.topic
    structured = [
        message
        for message in (resolve(document, ref["$ref"]) for ref in channel["messages"].values())
        if message["name"] == event.event_type
        and message["contentType"] == "application/cloudevents+json"
    ]
    assert len(structured) == 1, f"{event.event_type} needs one structured message on {event.topic}"
    payload = resolve(document, structured[0]["payload"]["$ref"])
    assert payload["properties"]["type"]["const"] == event.event_type
    assert payload["properties"]["data"]["$ref"].startswith("#/components/schemas/")


def test_every_topic_and_dead_letter_topic_has_its_channel(document: dict[str, Any]) -> None:
    addresses = sorted(channel["address"] for channel in document["channels"].values())
    assert addresses == sorted(all_topic_names())


def test_every_ref_in_the_asyncapi_document_resolves_inside_it(document: dict[str, Any]) -> None:
    found = list(refs(document))
    assert found
    for ref in found:
        assert not ref.startswith("#/$defs/"), f"{ref} was not hoisted into components/schemas"
        resolve(document, ref)


def test_every_ref_in_each_schema_file_resolves_inside_it(
    schemas: dict[str, dict[str, Any]],
) -> None:
    for schema in schemas.values():
        for ref in refs(schema):
            resolve(schema, ref)


def test_each_operation_uses_its_own_channel_and_only_that_channels_messages(
    document: dict[str, Any],
) -> None:
    for operation_id, operation in document["operations"].items():
        channel = operation["channel"]["$ref"]
        assert channel.startswith("#/channels/"), operation_id
        assert operation["messages"], operation_id
        for message in operation["messages"]:
            assert message["$ref"].startswith(f"{channel}/messages/"), operation_id


def test_each_topic_has_a_send_per_producer_and_a_receive_per_consumer(
    document: dict[str, Any],
) -> None:
    by_channel: dict[tuple[str, str], set[str]] = {}
    for operation in document["operations"].values():
        key = (operation["channel"]["$ref"].removeprefix("#/channels/"), operation["action"])
        by_channel.setdefault(key, set()).update(tag["name"] for tag in operation["tags"])
    for topic in TOPICS:
        assert by_channel[(topic.name, "send")] == {topic.producer}
        assert by_channel[(topic.name, "receive")] == set(topic.consumers)
        ours = {consumer for consumer in topic.consumers if consumer in PRODUCT_SERVICES}
        assert by_channel[(topic.dlq, "send")] == ours
        assert by_channel[(topic.dlq, "receive")] == {"operators"}


@pytest.mark.parametrize("event", SAMPLES)
def test_each_schema_accepts_a_real_encoded_event(
    event: events.Event, document: dict[str, Any], schemas: dict[str, dict[str, Any]]
) -> None:
    value = wire_value(event)
    schema = schemas[event.event_type]
    assert errors(value, schema, schema) == []
    component = {"$ref": f"#/components/schemas/{type(event).__name__}CloudEvent"}
    assert errors(value, component, document) == []


def test_the_schemas_reject_an_event_that_breaks_the_contract(
    schemas: dict[str, dict[str, Any]],
) -> None:
    schema = schemas["lottrace.goods-received.v1"]
    value = wire_value(minimal_events()[2])
    assert errors(value, schema, schema) == []

    del value["data"]["lot_code"]
    value["data"]["lot_id"] = "not-a-uuid"
    value["data"]["quantity"] = 5  # lottrace emits quantities as decimal strings
    value["type"] = "lottrace.order-placed.v1"
    problems = errors(value, schema, schema)
    assert any("lot_code is missing" in problem for problem in problems)
    assert any("$.data.lot_id" in problem for problem in problems)
    assert any("$.data.quantity" in problem for problem in problems)
    assert any("$.type" in problem for problem in problems)


def test_upstream_schemas_accept_quantities_as_numbers_but_not_zero(
    schemas: dict[str, dict[str, Any]],
) -> None:
    schema = schemas["lottrace.order-placed.v1"]
    value = wire_value(minimal_events()[0])
    value["data"]["lines"][0]["quantity"] = 12
    assert errors(value, schema, schema) == []
    value["data"]["lines"][0]["quantity"] = 0
    assert errors(value, schema, schema) != []


def test_topics_written_upstream_get_validation_schemas_and_ours_serialization_schemas() -> None:
    for topic in TOPICS:
        expected = "serialization" if topic.producer in PRODUCT_SERVICES else "validation"
        assert schema_mode(topic) == expected
    assert schema_mode(TOPICS_BY_NAME["order-placed"]) == "validation"
    assert schema_mode(TOPICS_BY_NAME["recall-issued"]) == "serialization"


@pytest.mark.parametrize("event_type", sorted(CONTRACT_FIELDS))
def test_the_contract_field_names_appear_in_the_schema(
    event_type: str, schemas: dict[str, dict[str, Any]]
) -> None:
    schema = schemas[event_type]
    assert set(ENVELOPE) <= set(schema["properties"])
    data = data_schema(schema, schema)
    for path, names in CONTRACT_FIELDS[event_type].items():
        properties = at(data, path)["properties"]
        missing = [name for name in names if name not in properties]
        assert not missing, f"{event_type} {path or 'data'} lacks {missing}"


def test_every_event_type_is_covered_by_the_contract_field_lists() -> None:
    assert set(CONTRACT_FIELDS) == {event.event_type for event in ALL_EVENTS}
    assert set(CONTRACT_REQUIRED) == set(CONTRACT_FIELDS)


@pytest.mark.parametrize("event_type", sorted(CONTRACT_REQUIRED))
def test_the_fields_the_contract_requires_are_required_in_the_schema(
    event_type: str, schemas: dict[str, dict[str, Any]]
) -> None:
    schema = schemas[event_type]
    assert {"specversion", "id", "type", "source", "data"} <= set(schema["required"])
    data = data_schema(schema, schema)
    missing = [name for name in CONTRACT_REQUIRED[event_type] if name not in data["required"]]
    assert not missing, f"{event_type}: {missing} not required"


@pytest.mark.parametrize("event_type", sorted(CONTRACT_FIELDS))
def test_the_contract_field_types_hold_in_the_schema(
    event_type: str, schemas: dict[str, dict[str, Any]]
) -> None:
    schema = schemas[event_type]
    data = data_schema(schema, schema)
    for path in TIMESTAMPS.get(event_type, []):
        assert _kinds(_field(data, path)) == {("string", "date-time")}, path
    for path in DATES.get(event_type, []):
        assert _kinds(_field(data, path)) == {("string", "date")}, path
    for path in UUIDS.get(event_type, []):
        assert _kinds(_field(data, path)) == {("string", "uuid")}, path
    upstream = schema_mode(TOPICS_BY_NAME[EVENTS_BY_TYPE[event_type].topic]) == "validation"
    emitted = {("number", None), ("string", None)} if upstream else {("string", None)}
    for path in QUANTITIES.get(event_type, []):
        assert _kinds(_field(data, path)) == emitted, path


def test_the_dead_letter_channels_name_the_headers_the_consumer_adds(
    document: dict[str, Any],
) -> None:
    from shared.runtime.consumer import DLQ_HEADERS

    assert tuple(DEAD_LETTER_HEADERS) == DLQ_HEADERS
    for topic in TOPICS:
        (ref,) = document["channels"][topic.dlq]["messages"].values()
        headers = resolve(document, ref["$ref"])["headers"]
        assert tuple(headers["required"]) == DLQ_HEADERS
        assert headers["properties"]["source_topic"]["const"] == topic.name


def test_the_message_examples_match_their_headers_and_payload_schemas(
    document: dict[str, Any],
) -> None:
    checked = 0
    for message in document["components"]["messages"].values():
        for example in message.get("examples", []):
            assert errors(example["payload"], message["payload"], document) == []
            assert errors(example["headers"], message["headers"], document) == []
            checked += 1
    assert checked >= len(ALL_EVENTS)


def test_each_schema_file_says_what_its_asyncapi_counterpart_says(
    document: dict[str, Any], schemas: dict[str, dict[str, Any]]
) -> None:
    for event in ALL_EVENTS:
        schema = schemas[event.event_type]
        standalone = inline(schema, schema)
        component = inline({"$ref": f"#/components/schemas/{event.__name__}CloudEvent"}, document)
        standalone.pop("$schema")
        assert standalone == component


def test_the_yaml_and_json_documents_say_the_same(tmp_path: Path) -> None:
    write_documents(tmp_path)
    from_json = json.loads((tmp_path / "asyncapi.json").read_text(encoding="utf-8"))
    from_yaml = yaml.safe_load((tmp_path / "asyncapi.yaml").read_text(encoding="utf-8"))
    assert from_json == from_yaml
    assert from_json["asyncapi"] == "3.0.0"


def test_the_committed_documents_are_up_to_date(tmp_path: Path) -> None:
    written = write_documents(tmp_path)
    fresh = {path.relative_to(tmp_path).as_posix() for path in written}
    committed = {
        path.relative_to(COMMITTED).as_posix()
        for path in COMMITTED.rglob("*")
        if path.is_file() and path != CONTRACT_PAGE
    }
    hint = "regenerate with `python -m shared.contracts.docs` (or `lottrace contracts`)"
    assert committed == fresh, hint
    for name in sorted(fresh):
        assert (COMMITTED / name).read_bytes() == (tmp_path / name).read_bytes(), f"{name}: {hint}"


def test_writing_twice_gives_the_same_bytes(tmp_path: Path) -> None:
    first = {path: path.read_bytes() for path in write_documents(tmp_path / "a")}
    second = {path: path.read_bytes() for path in write_documents(tmp_path / "b")}
    assert list(first.values()) == list(second.values())
    assert all(content.endswith(b"\n") for content in first.values())


CONTRACT_PAGE = COMMITTED / "README.md"


def test_the_contract_page_in_the_repository_names_every_topic_and_event_type() -> None:
    page = CONTRACT_PAGE.read_text(encoding="utf-8")
    for topic in TOPICS:
        assert f"`{topic.name}`" in page, topic.name
        for event in topic.events:
            assert f"`{event.event_type}`" in page, event.event_type
    assert "../shared" not in page  # the repository stands on its own
