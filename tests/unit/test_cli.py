"""The `lottrace` command line without a platform: reading barcodes, refusing bad arguments
before anything is sent, turning a service's error into one line, and making the record a
dead letter stands for again."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from typing import Any
from uuid import uuid4

import httpx
import pytest
import typer
from aiokafka import ConsumerRecord
from typer.testing import CliRunner

from lottrace.cli import app
from lottrace.client import (
    REPLAYED_FROM_HEADER,
    Connection,
    DeadLetter,
    LottraceClient,
    NotReplayable,
    ServiceError,
    ServiceUnreachable,
    ServiceUrls,
    dead_letter_topic_of,
    distinct_records,
    original_headers,
    replay_message,
)
from lottrace.commands.dlq import select_dead_letters
from lottrace.commands.output import run_against_platform
from lottrace.commands.scan import with_group_separators
from services.fulfillment.schemas import ShipmentRequest
from shared.runtime.consumer import DLQ_HEADERS, dead_letter
from tests.kafka_helpers import consumer_record

GTIN = "09501101530003"
runner = CliRunner()


def invoke(*args: str, stdin: str | None = None) -> Any:
    return runner.invoke(app, list(args), input=stdin, env={"COLUMNS": "200"})


# ---------------------------------------------------------------------- scan


def test_scan_reads_a_gs1_128_label_as_the_scanner_sends_it_with_fnc1_typed_as_gs() -> None:
    result = invoke("scan", f"]C101{GTIN}1127033117270331" + "10LOT-7<GS>3724", "-f", "json")

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {
        "gtin": GTIN,
        "lot_code": "LOT-7",
        "production_date": "2027-03-31",
        "expiry_date": "2027-03-31",
        "count": 24,
        "human_readable": f"(01){GTIN}(11)270331(17)270331(10)LOT-7(37)24",
    }


def test_scan_reads_the_human_readable_form_and_shows_every_field_in_a_table() -> None:
    result = invoke("scan", f"(01){GTIN}(17)261231(10)ABC")

    assert result.exit_code == 0, result.output
    for expected in ("GTIN", GTIN, "expiry", "2026-12-31", "lot", "ABC", "as printed"):
        assert expected in result.stdout


def test_scan_reads_the_barcode_from_stdin_with_a_dash() -> None:
    result = invoke("scan", "-", "-f", "json", stdin=f"]d201{GTIN}10ABC\x1d21SN1\n")

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["serial"] == "SN1"


@pytest.mark.parametrize(
    ("barcode", "element", "words"),
    [
        pytest.param("(01)09501101530004(10)X", "(01)", "check digit", id="bad check digit"),
        pytest.param(f"01{GTIN}17261332", "(17)", "not a valid date", id="invalid date"),
        pytest.param(f"(01){GTIN}(89)X", "(89)", "is not a GS1 application identifier", id="AI"),
        pytest.param("hello", "barcode", "Not a GS1 barcode", id="not GS1 at all"),
        pytest.param("   ", "barcode", "empty", id="empty"),
    ],
)
def test_a_barcode_that_cannot_be_read_exits_2_naming_the_element(
    barcode: str, element: str, words: str
) -> None:
    result = invoke("scan", barcode)

    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.startswith(f"error: {element}: ")
    assert words in result.stderr


def test_group_separators_can_be_typed_as_gs_in_angle_brackets_or_as_an_escape() -> None:
    assert with_group_separators("10A<GS>21B\\x1d37") == "10A\x1d21B\x1d37"


# ---------------------------------------------------------------------- refused before sending


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(
            ["recall", "issue", "--reason", "off taste"],
            "a recall needs a scope",
            id="recall without a scope",
        ),
        pytest.param(
            ["recall", "issue", "--reason", "  ", "--lot-code", "L1"],
            "--reason is empty",
            id="recall with a blank reason",
        ),
        pytest.param(
            [
                "recall",
                "issue",
                "--reason",
                "x",
                "--sku",
                "OJ-1L",
                "--received-from",
                "2026-02-01",
                "--received-to",
                "2026-01-01",
            ],
            "received_from is after received_to",
            id="recall with dates the wrong way round",
        ),
        pytest.param(
            ["dlq", "replay", "--topic", "order-placed"],
            "give --offset N (one entry) or --all",
            id="replay of nothing",
        ),
        pytest.param(
            ["dlq", "replay", "--topic", "order-placed", "--all", "--offset", "3"],
            "give --offset N (one entry) or --all",
            id="replay of one entry and all",
        ),
        pytest.param(
            ["dlq", "replay", "--topic", "order-placed", "--all", "--partition", "1"],
            "--partition goes with --offset",
            id="replay with a partition but no offset",
        ),
    ],
)
def test_commands_refuse_arguments_that_make_no_sense_with_exit_status_2(
    args: list[str], message: str
) -> None:
    result = invoke(*args)

    assert result.exit_code == 2, result.output
    assert message in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["recall", "issue", "--lot-code", "L1"], id="recall without a reason"),
        pytest.param(
            ["recall", "issue", "--reason", "x", "--lot-id", "not-a-uuid"], id="bad lot id"
        ),
        pytest.param(
            ["recall", "issue", "--reason", "x", "--sku", "S", "--classification", "IV"],
            id="unknown recall class",
        ),
        pytest.param(
            ["recall", "issue", "--reason", "x", "--sku", "S", "--received-from", "21.11.2026"],
            id="date not YYYY-MM-DD",
        ),
        pytest.param(["trace", "L1", "--format", "svg"], id="unknown trace format"),
        pytest.param(["lots", "expiring", "--within-days", "-1"], id="negative days"),
        pytest.param(["dlq", "list", "--limit", "0"], id="no entries to show"),
        pytest.param(["recall", "status"], id="status of no recall"),
    ],
)
def test_typer_refuses_missing_or_malformed_options_with_exit_status_2(args: list[str]) -> None:
    result = invoke(*args)

    assert result.exit_code == 2, result.output


def test_nothing_is_sent_when_the_arguments_are_refused() -> None:
    # No platform listens on this port: reaching it would exit 1 (unreachable), not 2.
    result = invoke(
        "recall", "issue", "--reason", "x", "--recall-url", "http://127.0.0.1:9", "--yes"
    )

    assert result.exit_code == 2


# ---------------------------------------------------------------------- the platform's answers


def client_answering(status: int, body: Any) -> LottraceClient:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, json=body)

    return LottraceClient(Connection(api_key="k" * 32), transport=httpx.MockTransport(answer))


async def test_an_error_answer_becomes_a_service_error_with_the_services_code_and_detail() -> None:
    async with client_answering(404, {"error": "no_lots_in_scope", "detail": "none match"}) as api:
        with pytest.raises(ServiceError) as raised:
            await api.recall("R-1")

    error = raised.value
    assert (error.service, error.status, error.error, error.detail) == (
        "recall",
        404,
        "no_lots_in_scope",
        "none match",
    )
    assert str(error) == "recall GET /recalls/R-1: 404 no_lots_in_scope: none match"


async def test_a_401_says_where_the_key_comes_from() -> None:
    async with client_answering(401, {"error": "unauthorized", "detail": "unknown API key"}) as api:
        with pytest.raises(ServiceError) as raised:
            await api.expiring()

    assert raised.value.hint is not None
    assert "LOTTRACE_API_KEY" in raised.value.hint


async def test_the_key_is_sent_as_a_bearer_token() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=[])

    connection = Connection(api_key="secret-key-0123456789")
    async with LottraceClient(connection, transport=httpx.MockTransport(answer)) as api:
        assert await api.find_lots(lot_code="L1") == []

    assert seen[0].headers["authorization"] == "Bearer secret-key-0123456789"
    assert seen[0].url.params["lot_code"] == "L1"


def test_the_cli_turns_a_refusal_into_one_line_and_exit_status_1(
    capsys: pytest.CaptureFixture[str],
) -> None:
    async def refused() -> None:
        raise ServiceError("recall", "POST", "/recalls", 403, "forbidden", "needs recall-manager")

    with pytest.raises(typer.Exit) as exited:
        run_against_platform(refused())

    assert exited.value.exit_code == 1
    assert "recall POST /recalls: 403 forbidden: needs recall-manager" in capsys.readouterr().err


def test_an_unreachable_service_is_reported_with_its_address_variable() -> None:
    async def unreachable() -> None:
        async with LottraceClient(Connection(urls=ServiceUrls(recall="http://127.0.0.1:9"))) as api:
            await api.recall("R-1")

    with pytest.raises(ServiceUnreachable, match="LOTTRACE_RECALL_URL"):
        asyncio.run(unreachable())


def test_service_urls_come_from_the_environment_and_default_to_the_make_run_ports() -> None:
    urls = ServiceUrls.from_env({"LOTTRACE_RECALL_URL": "https://recall.example/"})

    assert urls.of("recall") == "https://recall.example"
    assert urls.of("receiving") == "http://127.0.0.1:8081"
    assert urls.but(inventory="http://x:1", recall=None).of("recall") == "https://recall.example"


# ---------------------------------------------------------------------- dead letters


def refused_record(
    headers: list[tuple[str, bytes]], *, value: bytes = b'{"id": 1}', offset: int = 41
) -> ConsumerRecord[bytes, bytes]:
    return consumer_record(
        "order-placed", value, key=b"SO-1", offset=offset, partition=2,
        timestamp=1_700_000_000_000, headers=headers,
    )  # fmt: skip


def as_dead_letter(
    record: ConsumerRecord[bytes, bytes], *, group: str = "inventory", offset: int = 7
) -> DeadLetter:
    """The dead letter exactly as the consumer writes it (shared/runtime/consumer.py)."""
    message = dead_letter(record, "contract_violation", "lines: too short", consumer_group=group)
    return DeadLetter(
        topic=message.topic,
        partition=0,
        offset=offset,
        timestamp_ms=record.timestamp,
        key=message.key,
        value=message.value,
        headers=tuple(message.headers),
    )


ORIGINAL = [("content-type", b"application/cloudevents+json"), ("ce_id", b"e-1"), ("x", b"1")]


def test_a_dead_letter_names_why_where_from_and_which_consumer_group() -> None:
    letter = as_dead_letter(refused_record(ORIGINAL))

    assert letter.error_type == "contract_violation"
    assert letter.error_message == "lines: too short"
    assert letter.source_position == ("order-placed", 2, 41)
    assert letter.consumer_group == "inventory"
    assert letter.position == "order-placed.dlq:0:7"


def test_replaying_restores_the_original_record_without_the_dead_letter_headers() -> None:
    record = refused_record(ORIGINAL)
    letter = as_dead_letter(record)

    message = replay_message(letter)

    assert (message.topic, message.partition) == ("order-placed", 2)
    assert (message.key, message.value) == (record.key, record.value)
    assert message.headers == [*ORIGINAL, (REPLAYED_FROM_HEADER, b"order-placed.dlq:0:7")]
    assert not {name for name, _ in message.headers} & set(DLQ_HEADERS)


def test_original_headers_drop_only_what_dead_lettering_and_replaying_added_in_order() -> None:
    headers = [
        ("ce_id", b"e-1"),
        ("error_type", b"malformed_json"),
        ("x", b"1"),
        (REPLAYED_FROM_HEADER, b"order-placed.dlq:0:1"),
        ("x", b"2"),
        ("source_offset", b"3"),
        ("value_truncated_from", b"2000000"),
        ("consumer_group", b"recall"),
    ]

    assert original_headers(headers) == [("ce_id", b"e-1"), ("x", b"1"), ("x", b"2")]


def test_a_record_refused_again_after_a_replay_replays_with_one_mark_not_two() -> None:
    first = replay_message(as_dead_letter(refused_record(ORIGINAL)))
    again = as_dead_letter(refused_record(first.headers, offset=99), offset=8)

    headers = replay_message(again).headers

    assert [name for name, _ in headers].count(REPLAYED_FROM_HEADER) == 1
    assert headers[-1] == (REPLAYED_FROM_HEADER, b"order-placed.dlq:0:8")


def test_a_truncated_dead_letter_is_not_replayed() -> None:
    letter = as_dead_letter(refused_record(ORIGINAL, value=b"x" * (900 * 1024)))

    assert letter.truncated_from == 900 * 1024
    with pytest.raises(NotReplayable, match="have the producer send the event again"):
        replay_message(letter)


def test_every_group_s_copy_and_every_failed_replay_of_one_record_is_replayed_once() -> None:
    record = refused_record(ORIGINAL)
    by_inventory = as_dead_letter(record, group="inventory", offset=1)
    by_fulfillment = as_dead_letter(record, group="fulfillment", offset=2)
    replayed = replay_message(by_inventory)
    refused_again = as_dead_letter(refused_record(replayed.headers, offset=77), offset=3)
    other = as_dead_letter(refused_record(ORIGINAL, value=b'{"id": 2}'), offset=4)

    chosen = distinct_records([by_inventory, by_fulfillment, refused_again, other])

    assert chosen == [by_inventory, other]


def test_one_entry_is_chosen_by_offset_and_a_partition_decides_between_partitions() -> None:
    record = refused_record(ORIGINAL)
    first = as_dead_letter(record, offset=5)
    second = replace(as_dead_letter(record, offset=5), partition=1)

    assert select_dead_letters([first], offset=5, partition=None, dlq_topic="t.dlq") == [first]
    assert select_dead_letters([first, second], offset=5, partition=1, dlq_topic="t.dlq") == [
        second
    ]
    with pytest.raises(typer.Exit) as ambiguous:
        select_dead_letters([first, second], offset=5, partition=None, dlq_topic="t.dlq")
    assert ambiguous.value.exit_code == 2
    with pytest.raises(typer.Exit) as missing:
        select_dead_letters([first], offset=6, partition=None, dlq_topic="t.dlq")
    assert missing.value.exit_code == 1


def test_a_topic_or_its_dead_letter_topic_name_the_same_dead_letter_topic() -> None:
    assert dead_letter_topic_of("order-placed") == "order-placed.dlq"
    assert dead_letter_topic_of("order-placed.dlq") == "order-placed.dlq"


def test_a_dead_letter_without_a_source_header_replays_to_the_topic_its_dlq_is_named_after() -> (
    None
):
    letter = DeadLetter(
        topic="goods-received.dlq",
        partition=0,
        offset=0,
        timestamp_ms=0,
        key=str(uuid4()).encode(),
        value=b"{}",
        headers=(),
    )

    message = replay_message(letter)

    assert (message.topic, message.partition) == ("goods-received", None)


async def test_the_client_accepts_a_newer_server_that_adds_optional_fields() -> None:
    """The contract lets a service add optional fields: an older CLI must still read them,
    though the service's own response models refuse undeclared fields when they are built."""
    shipment = {
        "shipment_id": "SH-1",
        "order_id": "SO-1",
        "customer": {"customer_id": "C1"},
        "shipped_at": "2026-12-06T10:00:00Z",
        "shipped_by": "dock-1",
        "lines": [
            {
                "line_no": 1,
                "sku": "OJ-1L",
                "lot_id": "0193a6d2-0003-7000-8000-000000000003",
                "lot_code": "OJ-1",
                "quantity": "2",
                "uom": "EA",
                "added_by_a_newer_server": True,
            }
        ],
        "added_by_a_newer_server": {"any": "thing"},
    }

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(201, json=shipment)

    connection = Connection(api_key="k")
    async with LottraceClient(connection, transport=httpx.MockTransport(answer)) as api:
        shipped = await api.ship(ShipmentRequest(order_id="SO-1"))

    assert (shipped.shipment_id, shipped.lines[0].lot_code) == ("SH-1", "OJ-1")


@pytest.mark.parametrize("command", [["check"], ["replay", "fulfillment"]], ids=["check", "replay"])
def test_a_refused_service_setting_exits_2_naming_it_without_its_value(
    command: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The refused URL carries a password: the CLI must not print it back.
    monkeypatch.setenv("FULFILLMENT_DATABASE_URL", "mysql://a:pw9@h/d")

    result = invoke(*command)

    assert result.exit_code == 2, result.output
    assert "FULFILLMENT_DATABASE_URL: Value error, must be a postgresql:// URL" in result.stderr
    assert "pw9" not in result.output
    assert "Traceback" not in result.output
