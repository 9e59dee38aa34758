"""`lottrace recall respond`, `lottrace recall effectiveness` and `lottrace drill`, against a
stand-in recall service: what they send, and what they refuse before sending anything."""

from __future__ import annotations

import json

import httpx
import pytest

from lottrace.commands import drill, recall
from tests.cli_stand_in import invoke, stand_in

DRILL = {
    "drill_id": "D1", "requested_at": "2026-12-01T10:00:00Z", "requested_by": "qa",
    "reason": "drill", "classification": "I", "scope": {"lot_codes": ["CHEESE-1"]},
    "affected_lots": 2, "affected_customer_count": 3, "shipped_quantity": "12",
    "check_level": "A", "sample_size": 3, "stages": {"scope": 1.5, "epcis": 2.0}, "total_ms": 3.5,
}  # fmt: skip


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[httpx.Request]:
    """The requests the commands send to a stand-in recall service."""

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/responses"):
            body = json.loads(request.content)
            return httpx.Response(201, json={**body, "recall_id": "R1", "recorded": True})
        if request.url.path == "/recalls":
            return httpx.Response(202, json={"recall_id": "D1", "status": "drill", "drill": True,
                                             "affected_lots": 2, "affected_customer_count": 3,
                                             "shipped_quantity": "12"})  # fmt: skip
        return httpx.Response(200, json=[DRILL])

    return stand_in(monkeypatch, answer, recall, drill)


def test_respond_sends_reported_units_as_a_units_report(sent: list[httpx.Request]) -> None:
    result = invoke(
        "recall", "respond", "R1", "--customer", "C5", "--kind", "acknowledged",
        "--destroyed", "CHEESE-1=12", "--on-hand", "CHEESE-1=1", "--response-id", "CALL-7",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    [request] = sent
    body = json.loads(request.content)
    assert (request.url.path, body["kind"], body["response_id"]) == (
        "/recalls/R1/responses", "units-reported", "CALL-7",
    )  # fmt: skip
    assert body["units"] == [{"lot_code": "CHEESE-1", "destroyed": "12", "on_hand": "1"}]
    assert "CALL-7" in result.output


@pytest.mark.parametrize(
    "args",
    [
        ["recall", "respond", "R1", "--customer", "C5", "--kind", "acknowledged",
         "--destroyed", "CHEESE-1"],
        ["recall", "respond", "R1", "--customer", "C5", "--kind", "acknowledged",
         "--destroyed", "CHEESE-1=-3"],
        ["drill"],
        ["recall", "effectiveness", "R1", "--export", "check.pdf"],
    ],
)  # fmt: skip
def test_bad_input_exits_2_and_sends_nothing(sent: list[httpx.Request], args: list[str]) -> None:
    result = invoke(*args)
    assert result.exit_code == 2, result.output
    assert sent == []


def test_drill_posts_a_drill_and_shows_its_stage_timings(sent: list[httpx.Request]) -> None:
    result = invoke("drill", "CHEESE-1", "--sku", "CHEESE", "--format", "json")
    assert result.exit_code == 0, result.output
    posted = json.loads(sent[0].content)
    assert (posted["drill"], posted["scope"]) == (
        True,
        {"lot_codes": ["CHEESE-1"], "sku": "CHEESE"},
    )
    assert json.loads(result.output)[0]["stages"] == {"scope": 1.5, "epcis": 2.0}
