"""The external contract (CONTRACTS.md): CloudEvents envelopes on Kafka, event payloads, their
keys and subjects, and how a consumer accepts or rejects what it reads."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest
from pydantic import ValidationError

from shared.contracts import events
from shared.contracts.envelope import Incoming, Rejected, TopicDecoder, encode
from shared.contracts.events import ALL_EVENTS
from shared.contracts.topics import TOPICS, TOPICS_BY_NAME, TopicSpec
from shared.contracts.types import ContractModel
from tests.kafka_helpers import binary_headers

LOT_ID = UUID("0193a6d2-7c1e-7b7e-9a51-3c0f2f0d9a10")
INPUT_LOT_ID = UUID("0193a6d2-7c1e-7b7e-9a51-3c0f2f0d9a11")
AT = datetime(2026, 11, 21, 10, 15, tzinfo=UTC)
CUSTOMER = {"customer_id": "C-77", "name": "Corner Shop"}

SAMPLES: dict[type[events.Event], events.Event] = {
    events.OrderPlaced: events.OrderPlaced(
        order_id="SO-1001",
        customer=CUSTOMER,
        lines=[
            {"line_no": 1, "sku": "OJ-1L", "quantity": "12.5", "uom": "L"},
            {"line_no": 2, "sku": "AJ-1L", "quantity": 3},
        ],
        min_remaining_shelf_life_days=14,
        placed_at=AT,
    ),
    events.OrderCancelled: events.OrderCancelled(
        order_id="SO-1001", reason="customer changed their mind"
    ),
    events.GoodsReceived: events.GoodsReceived(
        receipt_id="R-1",
        lot_id=LOT_ID,
        lot_code="OJ-1L-20261121-0001",
        sku="OJ-1L",
        gtin="09501101530003",
        quantity="120",
        received_at=AT,
        supplier={"supplier_id": "SUP-1"},
        expiry_date=date(2027, 5, 1),
        unit_cost={"amount": "1.25", "currency": "EUR"},
        inputs=[
            {
                "lot_id": INPUT_LOT_ID,
                "lot_code": "ORG-7",
                "sku": "ORANGE",
                "quantity": "40.5",
                "uom": "KG",
            }
        ],
    ),
    events.LotAllocated: events.LotAllocated(
        order_id="SO-1001",
        customer_id="C-77",
        allocations=[
            {
                "line_no": 1,
                "sku": "OJ-1L",
                "lot_id": LOT_ID,
                "lot_code": "OJ-1L-20261121-0001",
                "quantity": "10",
                "uom": "L",
                "expiry_date": date(2027, 5, 1),
            }
        ],
        backordered=[
            {"line_no": 1, "sku": "OJ-1L", "quantity": "2.5", "uom": "L", "reason": "no_stock"}
        ],
        revision=1,
    ),
    events.OrderShipped: events.OrderShipped(
        shipment_id="SH-1",
        order_id="SO-1001",
        customer=CUSTOMER,
        shipped_at=AT,
        lines=[
            {
                "line_no": 1,
                "sku": "OJ-1L",
                "lot_id": LOT_ID,
                "lot_code": "OJ-1L-20261121-0001",
                "quantity": "10",
            }
        ],
    ),
    events.RecallIssued: events.RecallIssued(
        recall_id="RC-9",
        issued_at=AT,
        reason="undeclared allergen",
        classification="I",
        scope={"lot_ids": [INPUT_LOT_ID]},
        affected_lots=[
            {"lot_id": LOT_ID, "lot_code": "OJ-1L-20261121-0001", "sku": "OJ-1L"},
        ],
        affected_customer_count=1,
        shipped_quantity="10",
    ),
    events.RecallCustomerNotice: events.RecallCustomerNotice(
        recall_id="RC-9",
        customer=CUSTOMER,
        shipments=[
            {
                "shipment_id": "SH-1",
                "order_id": "SO-1001",
                "shipped_at": AT,
                "sku": "OJ-1L",
                "lot_id": LOT_ID,
                "lot_code": "OJ-1L-20261121-0001",
                "quantity": "10",
            }
        ],
        reminder=1,
    ),
    events.GoodsReturned: events.GoodsReturned(
        return_id="RT-1",
        customer=CUSTOMER,
        recall_id="RC-9",
        returned_at=AT,
        lines=[
            {
                "line_no": 1,
                "sku": "OJ-1L",
                "lot_code": "OJ-1L-20261121-0001",
                "quantity": "4",
                "reason": "recall",
                "condition": "sealed",
            }
        ],
    ),
    events.RecallResponse: events.RecallResponse(
        response_id="RR-1",
        recall_id="RC-9",
        customer_id="C-77",
        responded_at=AT,
        kind="units-reported",
        channel="phone",
        units=[{"lot_id": LOT_ID, "destroyed": "2", "on_hand": "0"}],
    ),
    events.LotStatusChanged: events.LotStatusChanged(
        lot_id=LOT_ID,
        lot_code="OJ-1L-20261121-0001",
        sku="OJ-1L",
        status="quarantined",
        previous_status="available",
        reason="hold: supplier complaint",
        changed_at=AT,
    ),
    events.LotMoved: events.LotMoved(
        movement_id="MV-1",
        lot_id=LOT_ID,
        lot_code="OJ-1L-20261121-0001",
        sku="OJ-1L",
        kind="return-to-vendor",
        quantity=Decimal(8),
        from_location="MAIN",
        supplier_id="SUP-7",
        rma="RMA-77",
        reason="failed QC: mould",
        moved_at=AT,
        actor="qa-lead",
    ),
    events.LotRegistered: events.LotRegistered(
        registration_id="REG-1",
        lot_id=LOT_ID,
        lot_code="OJ-1L-20261121-0001",
        sku="OJ-1L",
        location="MAIN",
        received_at=AT,
        supplier={"supplier_id": "GROVE"},
        reason="onboarding",
    ),
}
SUBJECTS = {
    events.OrderPlaced: "SO-1001",
    events.OrderCancelled: "SO-1001",
    events.GoodsReceived: str(LOT_ID),
    events.LotAllocated: "SO-1001",
    events.OrderShipped: "SO-1001",
    events.RecallIssued: "RC-9",
    events.RecallCustomerNotice: "RC-9",
    events.GoodsReturned: "RT-1",
    events.RecallResponse: "RC-9",
    events.LotStatusChanged: str(LOT_ID),
    events.LotMoved: str(LOT_ID),
    events.LotRegistered: str(LOT_ID),
}


def structured(event_type: str, data: Any, **attributes: Any) -> bytes:
    envelope = {"specversion": "1.0", "id": "ev-1", "source": "/oms/eu-1", "type": event_type}
    return json.dumps({**envelope, **attributes, "data": data}, default=str).encode()


def decode(
    topic: str, value: bytes, headers: list[tuple[str, bytes]] | None = None
) -> Incoming[Any] | Rejected:
    return TopicDecoder(TOPICS_BY_NAME[topic]).decode(
        value=value, headers=headers or [], partition=0, offset=42, key=None
    )


def order_data(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "order_id": "SO-1001",
        "customer": {"customer_id": "C-77"},
        "lines": [{"line_no": 1, "sku": "OJ-1L", "quantity": "12.5"}],
    }
    data.update(changes)
    return data


def decode_order(data: Any) -> Incoming[Any] | Rejected:
    return decode("order-placed", structured(events.OrderPlaced.event_type, data))


def accepted(result: Incoming[Any] | Rejected) -> Incoming[Any]:
    assert isinstance(result, Incoming), result
    return result


def rejected(result: Incoming[Any] | Rejected) -> Rejected:
    assert isinstance(result, Rejected), result
    return result


def sample_id(event: type[events.Event]) -> str:
    return event.__name__


# ------------------------------------------------------------------ producing


@pytest.mark.parametrize("event_class", ALL_EVENTS, ids=sample_id)
def test_an_event_is_sent_as_a_structured_cloudevent_with_routing_headers(
    event_class: type[events.Event],
) -> None:
    event = SAMPLES[event_class]

    message = encode(event, source="/lottrace/test", event_id="ev-123", time=AT)

    body = json.loads(message.value)
    assert body["specversion"] == "1.0"
    assert body["id"] == "ev-123"
    assert body["type"] == event_class.event_type
    assert body["source"] == "/lottrace/test"
    assert body["time"] == "2026-11-21T10:15:00Z"
    assert body["subject"] == SUBJECTS[event_class]
    assert body["datacontenttype"] == "application/json"
    assert body["data"] == event.model_dump(mode="json", exclude_none=True)
    assert dict(message.headers) == {
        "content-type": b"application/cloudevents+json",
        "ce_id": b"ev-123",
        "ce_type": event_class.event_type.encode(),
        "ce_source": b"/lottrace/test",
    }
    assert message.topic == event_class.topic
    assert message.key == SUBJECTS[event_class].encode()


def test_each_sent_event_gets_its_own_id_when_none_is_given() -> None:
    first = encode(SAMPLES[events.OrderCancelled], source="/oms")
    second = encode(SAMPLES[events.OrderCancelled], source="/oms")

    assert json.loads(first.value)["id"] != json.loads(second.value)["id"]


@pytest.mark.parametrize("event_class", ALL_EVENTS, ids=sample_id)
def test_what_is_sent_is_read_back_as_the_same_event(event_class: type[events.Event]) -> None:
    event = SAMPLES[event_class]
    message = encode(event, source="/lottrace/test", event_id="ev-123")

    incoming = accepted(decode(event_class.topic, message.value, message.headers))

    assert incoming.data == event
    assert (incoming.id, incoming.source, incoming.type) == (
        "ev-123",
        "/lottrace/test",
        event_class.event_type,
    )
    assert incoming.subject == SUBJECTS[event_class]


def test_log_lines_about_an_event_name_its_id_type_and_business_ids() -> None:
    incoming = accepted(decode_order(order_data()))

    assert incoming.log_context() == {
        "event_id": "ev-1",
        "event_type": events.OrderPlaced.event_type,
        "subject": None,
        "order_id": "SO-1001",
    }


def test_quantities_are_sent_as_decimal_strings() -> None:
    data = json.loads(encode(SAMPLES[events.OrderPlaced], source="/oms").value)["data"]
    received = json.loads(encode(SAMPLES[events.GoodsReceived], source="/rcv").value)["data"]
    recall = json.loads(encode(SAMPLES[events.RecallIssued], source="/rcl").value)["data"]

    assert [line["quantity"] for line in data["lines"]] == ["12.5", "3"]
    assert received["quantity"] == "120"
    assert received["inputs"][0]["quantity"] == "40.5"
    assert received["unit_cost"] == {"amount": "1.25", "currency": "EUR"}
    assert recall["shipped_quantity"] == "10"


@pytest.mark.parametrize(
    ("given", "sent"),
    [("12.50", "12.5"), (12, "12"), ("12.000", "12"), (0.1, "0.1"), ("1E+1", "10")],
)
def test_a_quantity_has_one_spelling_on_the_wire(given: Any, sent: str) -> None:
    line = events.OrderLine(line_no=1, sku="OJ-1L", quantity=given)

    assert json.loads(line.model_dump_json())["quantity"] == sent


# ------------------------------------------------------------------ quantities read


@pytest.mark.parametrize("quantity", [12.5, "12.5", "12.50"])
def test_a_quantity_is_accepted_as_a_json_number_or_a_decimal_string(quantity: Any) -> None:
    lines = [{"line_no": 1, "sku": "OJ-1L", "quantity": quantity}]

    incoming = accepted(decode_order(order_data(lines=lines)))

    assert incoming.data.lines[0].quantity == Decimal("12.5")


AMOUNTS_MOVED: list[tuple[type[ContractModel], dict[str, Any]]] = [
    (events.OrderLine, {"line_no": 1, "sku": "OJ-1L"}),
    (
        events.LotInput,
        {"lot_id": INPUT_LOT_ID, "lot_code": "ORG-7", "sku": "ORANGE"},
    ),
    (
        events.Allocation,
        {"line_no": 1, "sku": "OJ-1L", "lot_id": LOT_ID, "lot_code": "L1"},
    ),
    (events.Backorder, {"line_no": 1, "sku": "OJ-1L", "reason": "no_stock"}),
    (
        events.ShipmentLine,
        {"line_no": 1, "sku": "OJ-1L", "lot_id": LOT_ID, "lot_code": "L1"},
    ),
    (
        events.NoticeShipment,
        {
            "shipment_id": "SH-1",
            "order_id": "SO-1",
            "shipped_at": AT,
            "sku": "OJ-1L",
            "lot_id": LOT_ID,
            "lot_code": "L1",
        },
    ),
]


@pytest.mark.parametrize("quantity", [0, "0", "-1", -0.5, "NaN", "Infinity"])
@pytest.mark.parametrize(
    ("model", "fields"), AMOUNTS_MOVED, ids=[model.__name__ for model, _ in AMOUNTS_MOVED]
)
def test_an_amount_moved_must_be_a_positive_finite_number(
    model: type[ContractModel], fields: dict[str, Any], quantity: Any
) -> None:
    with pytest.raises(ValidationError, match="quantity"):
        model.model_validate({**fields, "quantity": quantity})


def test_a_received_quantity_must_be_positive() -> None:
    data = SAMPLES[events.GoodsReceived].model_dump(mode="json")

    with pytest.raises(ValidationError, match="quantity"):
        events.GoodsReceived.model_validate({**data, "quantity": "0"})


def test_a_recall_may_report_nothing_shipped_but_not_a_negative_amount() -> None:
    data = SAMPLES[events.RecallIssued].model_dump(mode="json")

    assert events.RecallIssued.model_validate({**data, "shipped_quantity": 0}).shipped_quantity == 0
    with pytest.raises(ValidationError, match="shipped_quantity"):
        events.RecallIssued.model_validate({**data, "shipped_quantity": "-1"})


# ------------------------------------------------------------------ consuming


def binary_order_headers(source: bytes, *more: tuple[str, bytes]) -> list[tuple[str, bytes]]:
    """The headers of an order-placed event sent in binary mode (attributes as headers)."""
    return binary_headers(
        events.OrderPlaced.event_type, event_id="bin-1", source=source.decode(), more=more
    )


def test_a_binary_mode_event_is_accepted() -> None:
    headers = binary_order_headers(
        b"/oms/us-2",
        ("ce_subject", b"SO-1001"),
        ("ce_time", b"2026-11-21T10:15:00+01:00"),
        ("content-type", b"application/json"),
    )

    incoming = accepted(decode("order-placed", json.dumps(order_data()).encode(), headers))

    assert (incoming.id, incoming.source, incoming.subject) == ("bin-1", "/oms/us-2", "SO-1001")
    assert incoming.time == datetime(2026, 11, 21, 9, 15, tzinfo=UTC)
    assert incoming.data.lines[0].quantity == Decimal("12.5")
    assert (incoming.topic, incoming.offset) == ("order-placed", 42)


def test_a_binary_mode_event_whose_data_is_not_json_is_malformed() -> None:
    headers = binary_order_headers(b"/oms")

    assert rejected(decode("order-placed", b"{not json", headers)).error_type == "malformed_json"


@pytest.mark.parametrize("value", [b"{not json", b'{"specversion": "1.0",', b"\xff\xfe"])
def test_a_value_that_is_not_json_is_malformed(value: bytes) -> None:
    assert rejected(decode("order-placed", value)).error_type == "malformed_json"


def test_an_empty_message_is_rejected() -> None:
    assert rejected(decode("order-placed", b"")).error_type == "malformed_message"


def test_an_event_type_the_topic_does_not_carry_is_unknown() -> None:
    value = structured("lottrace.order-amended.v1", order_data())

    result = rejected(decode("order-placed", value))

    assert result.error_type == "unknown_event_type"


@pytest.mark.parametrize(
    ("data", "field"),
    [
        pytest.param(
            {k: v for k, v in order_data().items() if k != "customer"},
            "data.customer",
            id="missing customer",
        ),
        pytest.param(
            order_data(lines=[{"line_no": 1, "sku": "OJ-1L", "quantity": "-2"}]),
            "data.lines.0.quantity",
            id="negative quantity",
        ),
        pytest.param(
            order_data(
                lines=[
                    {"line_no": 1, "sku": "OJ-1L", "quantity": 1},
                    {"line_no": 1, "sku": "AJ-1L", "quantity": 1},
                ]
            ),
            "line_no must be unique",
            id="line_no repeated",
        ),
        pytest.param(order_data(lines=[]), "data.lines", id="no lines"),
        pytest.param(
            order_data(min_remaining_shelf_life_days=-1),
            "data.min_remaining_shelf_life_days",
            id="negative shelf life",
        ),
        pytest.param(
            order_data(placed_at="2026-11-21T10:15:00"),
            "data.placed_at",
            id="timestamp without offset",
        ),
    ],
)
def test_an_event_breaking_the_contract_is_rejected_naming_the_field(data: Any, field: str) -> None:
    result = rejected(decode_order(data))

    assert result.error_type == "contract_violation"
    assert field in result.error_message


def test_an_envelope_without_an_id_is_a_contract_violation() -> None:
    value = json.dumps(
        {
            "specversion": "1.0",
            "source": "/oms",
            "type": events.OrderPlaced.event_type,
            "data": order_data(),
        }
    ).encode()

    result = rejected(decode("order-placed", value))

    assert result.error_type == "contract_violation"
    assert "id" in result.error_message


def test_fields_a_newer_producer_adds_are_ignored() -> None:
    data = order_data(
        priority="express", lines=[{"line_no": 1, "sku": "OJ-1L", "quantity": 2, "gift_wrap": True}]
    )
    value = structured(events.OrderPlaced.event_type, data, traceparent="00-abc-def-01")

    incoming = accepted(decode("order-placed", value))

    assert incoming.data.order_id == "SO-1001"
    assert incoming.data.lines[0].quantity == Decimal(2)


def test_an_order_line_defaults_to_eaches_and_reads_unit_codes_in_upper_case() -> None:
    lines = [
        {"line_no": 1, "sku": "OJ-1L", "quantity": 1},
        {"line_no": 2, "sku": "SUGAR", "quantity": 1, "uom": "kg"},
    ]

    incoming = accepted(decode_order(order_data(lines=lines)))

    assert [line.uom for line in incoming.data.lines] == ["EA", "KG"]


@pytest.mark.parametrize(
    "event_class", [events.RecallIssued, events.RecallCustomerNotice], ids=sample_id
)
def test_the_recall_topic_accepts_both_recall_event_types(event_class: type[events.Event]) -> None:
    event = SAMPLES[event_class]
    value = structured(event_class.event_type, event.model_dump(mode="json"))

    assert isinstance(accepted(decode("recall-issued", value)).data, event_class)


def test_the_recall_topic_rejects_an_order() -> None:
    result = rejected(
        decode("recall-issued", structured(events.OrderPlaced.event_type, order_data()))
    )

    assert result.error_type == "unknown_event_type"


def test_a_records_type_is_read_without_validating_its_event() -> None:
    recall = TopicDecoder(TOPICS_BY_NAME["recall-issued"])
    broken = structured(events.RecallCustomerNotice.event_type, {"shipments": []})
    binary = binary_order_headers(b"/oms")

    assert recall.event_type(value=broken, headers=[]) == events.RecallCustomerNotice.event_type
    assert recall.event_type(value=b"{}", headers=binary) == events.OrderPlaced.event_type
    assert recall.event_type(value=b"{not json", headers=[]) is None
    assert recall.event_type(value=b'{"data": {"type": "x"}}', headers=[]) is None
    assert recall.event_type(value=b"", headers=binary) is None


def test_a_recall_notice_must_list_at_least_one_shipment() -> None:
    data = SAMPLES[events.RecallCustomerNotice].model_dump(mode="json")
    value = structured(events.RecallCustomerNotice.event_type, {**data, "shipments": []})

    result = rejected(decode("recall-issued", value))

    assert result.error_type == "contract_violation"
    assert "shipments" in result.error_message


# ------------------------------------------------------------------ payload rules


@pytest.mark.parametrize(
    "scope",
    [
        {"lot_ids": [LOT_ID]},
        {"lot_codes": ["OJ-1L-20261121-0001"]},
        {"sku": "OJ-1L"},
        {"supplier_id": "SUP-1"},
        {"sku": "OJ-1L", "received_from": "2026-11-01", "received_to": "2026-11-01"},
    ],
)
def test_a_recall_scope_naming_lots_a_sku_or_a_supplier_is_valid(scope: dict[str, Any]) -> None:
    events.RecallScope.model_validate(scope)


@pytest.mark.parametrize(
    "scope",
    [
        {},
        {"lot_ids": [], "lot_codes": []},
        {"received_from": "2026-11-01", "received_to": "2026-11-30"},
    ],
)
def test_a_recall_scope_must_name_something_to_recall(scope: dict[str, Any]) -> None:
    with pytest.raises(ValidationError, match="scope needs"):
        events.RecallScope.model_validate(scope)


def test_a_recall_scope_cannot_end_before_it_starts() -> None:
    with pytest.raises(ValidationError, match="received_from is after received_to"):
        events.RecallScope.model_validate(
            {"sku": "OJ-1L", "received_from": "2026-11-30", "received_to": "2026-11-01"}
        )


def test_a_received_lot_id_must_be_a_uuid() -> None:
    data = SAMPLES[events.GoodsReceived].model_dump(mode="json")
    value = structured(events.GoodsReceived.event_type, {**data, "lot_id": "LOT-42"})

    result = rejected(decode("goods-received", value))

    assert result.error_type == "contract_violation"
    assert "data.lot_id" in result.error_message


def test_a_gtin_must_have_a_gs1_length() -> None:
    data = SAMPLES[events.GoodsReceived].model_dump(mode="json")

    with pytest.raises(ValidationError, match="gtin"):
        events.GoodsReceived.model_validate({**data, "gtin": "0950110153000"[:11]})


# ------------------------------------------------------------------ topics and keys


@pytest.mark.parametrize(
    ("topic", "event_class"),
    [(topic, event) for topic in TOPICS for event in topic.events],
    ids=lambda value: value.name if isinstance(value, TopicSpec) else value.__name__,
)
def test_every_event_is_keyed_by_its_topics_key(
    topic: TopicSpec, event_class: type[events.Event]
) -> None:
    event = SAMPLES[event_class]

    assert event.topic == topic.name
    assert event.key() == str(getattr(event, topic.key))
    assert encode(event, source="/t").key == str(getattr(event, topic.key)).encode()


def test_every_event_type_travels_on_exactly_one_topic() -> None:
    carried = [event for topic in TOPICS for event in topic.events]

    assert sorted(e.__name__ for e in carried) == sorted(e.__name__ for e in ALL_EVENTS)


@pytest.mark.parametrize(
    ("kind", "missing", "field"),
    [("move", "to_location", "to_location"), ("return-to-vendor", "rma", "rma")],
)
def test_a_movement_must_say_where_a_move_went_and_under_which_rma_a_return_went(
    kind: str, missing: str, field: str
) -> None:
    movement = SAMPLES[events.LotMoved].model_dump(mode="json") | {
        "kind": kind,
        "to_location": "BAY-2",
        "rma": "RMA-77",
    }
    with pytest.raises(ValidationError, match=field):
        events.LotMoved.model_validate({**movement, missing: None})
