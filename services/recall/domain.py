"""Recall and traceability rules. Pure: no I/O, no framework."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar
from uuid import UUID

T = TypeVar("T")

# A notice must stay under 900 KB; one shipment entry is about 300 bytes of JSON.
MAX_SHIPMENTS_PER_NOTICE = 2000


def split_for_notices(
    shipments: Sequence[T], *, per_notice: int = MAX_SHIPMENTS_PER_NOTICE
) -> list[list[T]]:
    """A customer with very many shipments gets several notices, each under the size limit."""
    if per_notice < 1:
        raise ValueError("per_notice must be at least 1")
    return [list(shipments[i : i + per_notice]) for i in range(0, len(shipments), per_notice)] or [
        []
    ]


@dataclass(frozen=True)
class Edge:
    """Genealogy: `input_lot_id` was consumed to make `lot_id`."""

    lot_id: UUID
    input_lot_id: UUID
    quantity: Any = None
    uom: str | None = None


@dataclass
class TraceNode:
    lot_id: UUID
    depth: int
    parents: list[UUID] = field(default_factory=list)


def walk(
    start: UUID, edges: Iterable[Edge], *, forward: bool, max_depth: int = 100
) -> dict[UUID, TraceNode]:
    """Every lot reachable from `start` (made from it when forward, its inputs when backward),
    with its depth; cycles in bad data end the walk instead of looping."""
    links: dict[UUID, list[UUID]] = defaultdict(list)
    for edge in edges:
        if forward:
            links[edge.input_lot_id].append(edge.lot_id)
        else:
            links[edge.lot_id].append(edge.input_lot_id)
    nodes = {start: TraceNode(start, 0)}
    frontier = [start]
    while frontier:
        following = []
        for lot_id in frontier:
            depth = nodes[lot_id].depth
            if depth >= max_depth:
                continue
            for next_id in links.get(lot_id, ()):
                if next_id not in nodes:
                    nodes[next_id] = TraceNode(next_id, depth + 1, [lot_id])
                    following.append(next_id)
                elif lot_id not in nodes[next_id].parents and next_id != start:
                    nodes[next_id].parents.append(lot_id)
        frontier = following
    return nodes


def mermaid_genealogy(
    lots: dict[UUID, dict[str, Any]],
    edges: Iterable[Edge],
    *,
    highlight: UUID | None = None,
    customers: dict[UUID, int] | None = None,
) -> str:
    """A Mermaid flowchart of lots (input -> output), the traced lot highlighted, each lot
    with the number of customers who received it."""

    def node_id(lot_id: UUID) -> str:
        return "L" + lot_id.hex

    lines = ["flowchart LR"]
    for lot_id, lot in lots.items():
        label = f"{lot.get('lot_code', '?')}<br/>{lot.get('sku', '')}"
        count = (customers or {}).get(lot_id)
        if count:
            label += f"<br/>{count} customer{'s' if count != 1 else ''}"
        label = label.replace('"', "'")
        lines.append(f'    {node_id(lot_id)}["{label}"]')
    seen = set()
    for edge in edges:
        if (
            edge.lot_id in lots
            and edge.input_lot_id in lots
            and (edge.input_lot_id, edge.lot_id) not in seen
        ):
            seen.add((edge.input_lot_id, edge.lot_id))
            quantity = f"|{edge.quantity} {edge.uom}|" if edge.quantity is not None else ""
            lines.append(f"    {node_id(edge.input_lot_id)} -->{quantity} {node_id(edge.lot_id)}")
    if highlight is not None and highlight in lots:
        lines.append("    classDef traced fill:#fde68a,stroke:#b45309,stroke-width:2px")
        lines.append(f"    class {node_id(highlight)} traced")
    return "\n".join(lines) + "\n"
