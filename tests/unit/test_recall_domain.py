"""Recall and traceability rules: splitting a customer's notice, walking the genealogy forward
and backward, and drawing it as a Mermaid flowchart."""

from __future__ import annotations

import itertools
import re
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest

from services.recall import domain
from services.recall.domain import (
    Edge,
    NoticeSize,
    NoticeTooLarge,
    TraceNode,
    made_from,
    mermaid_genealogy,
    split_for_notices,
    trace_customers,
    walk,
)

APPLES = UUID("0193a6d2-0001-7000-8000-000000000001")
ORANGES = UUID("0193a6d2-0002-7000-8000-000000000002")
JUICE = UUID("0193a6d2-0003-7000-8000-000000000003")
MULTIPACK = UUID("0193a6d2-0004-7000-8000-000000000004")
GIFT_BOX = UUID("0193a6d2-0005-7000-8000-000000000005")

# apples + oranges -> juice -> multipack and gift box; the gift box also takes apples directly
GENEALOGY = [
    Edge(lot_id=JUICE, input_lot_id=APPLES, quantity=Decimal(40), uom="KG"),
    Edge(lot_id=JUICE, input_lot_id=ORANGES, quantity=Decimal(60), uom="KG"),
    Edge(lot_id=MULTIPACK, input_lot_id=JUICE, quantity=Decimal(24), uom="EA"),
    Edge(lot_id=GIFT_BOX, input_lot_id=JUICE, quantity=Decimal(6), uom="EA"),
    Edge(lot_id=GIFT_BOX, input_lot_id=APPLES, quantity=Decimal(2), uom="KG"),
]
LOTS: dict[UUID, dict[str, Any]] = {
    APPLES: {"lot_code": "APL-01", "sku": "APPLE"},
    ORANGES: {"lot_code": "ORG-01", "sku": "ORANGE"},
    JUICE: {"lot_code": "JUI-01", "sku": "JUICE-1L"},
    MULTIPACK: {"lot_code": "MP-01", "sku": "JUICE-6X1L"},
    GIFT_BOX: {"lot_code": "GB-01", "sku": "GIFT"},
}


def depths(nodes: dict[UUID, TraceNode]) -> dict[UUID, int]:
    return {lot_id: node.depth for lot_id, node in nodes.items()}


# ------------------------------------------------------------------ notices


def text_size(shipment: str) -> int:
    return len(shipment)


@pytest.mark.parametrize(
    ("sizes", "limit"),
    [([], 100), ([10], 100), ([10] * 9, 100), ([10] * 30, 100), ([50, 5, 50, 5, 50], 100)],
)
def test_a_customers_shipments_are_split_by_size_each_once_and_in_order(
    sizes: list[int], limit: int
) -> None:
    shipments = ["x" * size for size in sizes]
    size = NoticeSize(base=20, limit=limit)

    parts = split_for_notices(shipments, size_of=text_size, size=size)

    assert [shipment for part in parts for shipment in part] == shipments
    for part in parts:
        assert size.fits(sum(map(len, part)), len(part))


def test_a_part_is_closed_before_the_next_shipment_would_cross_the_limit() -> None:
    # base 20 + 7 entries of 10 + 6 commas = 96 fits; an eighth would make 107
    shipments = ["x" * 10] * 8

    parts = split_for_notices(shipments, size_of=text_size, size=NoticeSize(base=20, limit=100))

    assert [len(part) for part in parts] == [7, 1]


def test_a_customer_without_shipments_gets_one_empty_part() -> None:
    assert split_for_notices([], size_of=text_size, size=NoticeSize(base=20, limit=100)) == [[]]


def test_a_shipment_that_cannot_fit_even_alone_makes_the_notice_too_large() -> None:
    with pytest.raises(NoticeTooLarge, match="81 bytes"):
        split_for_notices(["x" * 81], size_of=text_size, size=NoticeSize(base=20, limit=100))


def test_a_count_cap_splits_further_than_the_size_alone() -> None:
    parts = split_for_notices(
        ["a"] * 7, size_of=text_size, size=NoticeSize(base=20, limit=10_000), per_notice=3
    )

    assert [len(part) for part in parts] == [3, 3, 1]


def test_a_notice_cannot_hold_fewer_than_one_shipment() -> None:
    with pytest.raises(ValueError, match="per_notice"):
        split_for_notices(
            ["SH-1"], size_of=text_size, size=NoticeSize(base=20, limit=100), per_notice=0
        )


# ------------------------------------------------------------------ tracing


def test_a_forward_trace_finds_every_lot_made_from_an_ingredient_with_its_depth() -> None:
    nodes = walk(APPLES, GENEALOGY, forward=True)

    # the gift box is one step from the apples directly, though also two steps via the juice
    assert depths(nodes) == {APPLES: 0, JUICE: 1, GIFT_BOX: 1, MULTIPACK: 2}
    assert nodes[JUICE].parents == [APPLES]
    assert nodes[MULTIPACK].parents == [JUICE]
    assert set(nodes[GIFT_BOX].parents) == {APPLES, JUICE}


def test_a_forward_trace_from_one_ingredient_leaves_out_the_other_ingredients() -> None:
    nodes = walk(ORANGES, GENEALOGY, forward=True)

    assert depths(nodes) == {ORANGES: 0, JUICE: 1, MULTIPACK: 2, GIFT_BOX: 2}
    assert APPLES not in nodes


def test_a_backward_trace_finds_every_input_down_to_the_raw_ingredients() -> None:
    nodes = walk(MULTIPACK, GENEALOGY, forward=False)

    assert depths(nodes) == {MULTIPACK: 0, JUICE: 1, APPLES: 2, ORANGES: 2}
    assert nodes[APPLES].parents == [JUICE]
    assert nodes[ORANGES].parents == [JUICE]
    assert nodes[MULTIPACK].parents == []


def test_a_lot_nothing_was_made_from_traces_to_itself_alone() -> None:
    assert depths(walk(MULTIPACK, GENEALOGY, forward=True)) == {MULTIPACK: 0}


def test_a_cycle_in_bad_genealogy_data_ends_the_walk() -> None:
    looping = [
        *GENEALOGY,
        Edge(lot_id=APPLES, input_lot_id=MULTIPACK),  # bad data: the multipack made the apples
    ]

    forward = walk(APPLES, looping, forward=True)
    backward = walk(JUICE, looping, forward=False)

    assert depths(forward) == {APPLES: 0, JUICE: 1, GIFT_BOX: 1, MULTIPACK: 2}
    assert forward[APPLES].parents == []
    assert depths(backward) == {JUICE: 0, APPLES: 1, ORANGES: 1, MULTIPACK: 2}


def test_a_trace_stops_at_the_maximum_depth() -> None:
    nodes = walk(APPLES, GENEALOGY, forward=True, max_depth=1)

    assert depths(nodes) == {APPLES: 0, JUICE: 1, GIFT_BOX: 1}


def test_made_from_names_each_lot_made_from_the_roots_with_its_nearest_root() -> None:
    via = made_from([APPLES, JUICE], GENEALOGY)

    # the gift box is made from the juice and, directly, from the apples: the nearer root names
    # it (one step from the apples, one from the juice: the first root given wins the tie)
    assert via == {MULTIPACK: JUICE, GIFT_BOX: APPLES}


def test_made_from_has_no_depth_limit_and_ends_on_a_cycle() -> None:
    lots = [UUID(int=n) for n in range(1, 202)]
    chain = [Edge(lot_id=b, input_lot_id=a) for a, b in itertools.pairwise(lots)]
    cycle = [*chain, Edge(lot_id=lots[0], input_lot_id=lots[-1])]

    assert made_from([lots[0]], chain) == dict.fromkeys(lots[1:], lots[0])
    assert made_from([lots[0]], cycle) == dict.fromkeys(lots[1:], lots[0])


def test_a_trace_has_no_depth_limit_unless_one_is_given() -> None:
    lots = [UUID(int=n) for n in range(1, 202)]
    chain = [Edge(lot_id=b, input_lot_id=a) for a, b in itertools.pairwise(lots)]

    assert max(node.depth for node in walk(lots[0], chain, forward=True).values()) == 200


# ------------------------------------------------------------------ Mermaid

NODE = re.compile(r'^    (L[0-9a-f]+)\["(.*)"\]$')
ARROW = re.compile(r"^    (L[0-9a-f]+) -->(?:\|[^|]*\|)? (L[0-9a-f]+)$")


def node_ids(chart: str) -> dict[str, str]:
    """Mermaid node id -> label."""
    return {m[1]: m[2] for line in chart.splitlines() if (m := NODE.match(line))}


def arrows(chart: str) -> list[tuple[str, str]]:
    return [(m[1], m[2]) for line in chart.splitlines() if (m := ARROW.match(line))]


def test_the_genealogy_chart_has_one_node_per_lot_and_one_arrow_per_input() -> None:
    chart = mermaid_genealogy(LOTS, [*GENEALOGY, GENEALOGY[0]], customers={MULTIPACK: 3})

    assert chart.startswith("flowchart")
    nodes = node_ids(chart)
    assert len(nodes) == len(LOTS)
    by_code = {label.split("<br/>")[0]: node for node, label in nodes.items()}
    assert set(by_code) == {"APL-01", "ORG-01", "JUI-01", "MP-01", "GB-01"}
    expected = {
        (by_code[LOTS[e.input_lot_id]["lot_code"]], by_code[LOTS[e.lot_id]["lot_code"]])
        for e in GENEALOGY
    }
    drawn = arrows(chart)
    assert len(drawn) == len(GENEALOGY)  # the repeated edge is drawn once
    assert set(drawn) == expected
    assert "3 customers" in nodes[by_code["MP-01"]]
    assert "|40 KG|" in chart


def test_the_genealogy_chart_highlights_the_traced_lot() -> None:
    chart = mermaid_genealogy(LOTS, GENEALOGY, highlight=JUICE)

    juice = next(node for node, label in node_ids(chart).items() if label.startswith("JUI-01"))
    assert re.search(rf"^    class {juice} traced$", chart, re.MULTILINE)
    assert "classDef traced" in chart


def test_a_lot_code_with_double_quotes_does_not_break_the_chart() -> None:
    chart = mermaid_genealogy({APPLES: {"lot_code": 'A"1', "sku": "APPLE"}}, [])

    assert list(node_ids(chart).values()) == ["A'1<br/>APPLE"]


def test_lots_created_in_the_same_millisecond_are_distinct_nodes() -> None:
    # two UUIDv7s of one millisecond differ only after the 48-bit timestamp
    first = UUID("019aa6d2-7c1e-7b7e-9a51-3c0f2f0d9a10")
    second = UUID("019aa6d2-7c1e-7b7f-8c02-11aa22bb33cc")
    lots = {
        first: {"lot_code": "IN-1", "sku": "APPLE"},
        second: {"lot_code": "OUT-1", "sku": "PIE"},
    }

    chart = mermaid_genealogy(lots, [Edge(lot_id=second, input_lot_id=first)])

    assert len(node_ids(chart)) == 2
    ((source, target),) = arrows(chart)
    assert source != target


def test_a_line_naming_a_known_lot_by_id_with_another_code_is_a_contradiction() -> None:
    lot_id, unknown = UUID(int=1), UUID(int=2)
    known = {lot_id: domain.NamedLot(lot_id, "OJ-1L", "L-1")}
    lines = [
        domain.NamedLot(lot_id, "OJ-1L", "L-1"),  # the lot as known
        domain.NamedLot(lot_id, "OJ-1L", "L-2"),  # its id, another lot's code
        domain.NamedLot(lot_id, "TEA", "L-1"),  # its id and code, another product
        domain.NamedLot(unknown, "TEA", "T-9"),  # a lot recall does not know yet
    ]
    assert domain.lot_contradictions(lines, known) == [
        f"lot {lot_id} is L-1 of OJ-1L, not L-2 of OJ-1L",
        f"lot {lot_id} is L-1 of OJ-1L, not L-1 of TEA",
    ]


def test_a_forward_traces_customers_are_listed_once_each_with_their_lots_in_shipment_order() -> (
    None
):
    def line(customer: str, lot_code: str) -> dict[str, str]:
        return {"customer_id": customer, "customer_name": f"Shop {customer}", "lot_code": lot_code}

    lines = [line("C2", "L9"), line("C1", "L2"), line("C2", "L1"), line("C2", "L9")]

    assert trace_customers(lines) == [
        {"customer_id": "C1", "name": "Shop C1", "lots": ["L2"]},
        {"customer_id": "C2", "name": "Shop C2", "lots": ["L9", "L1"]},
    ]
