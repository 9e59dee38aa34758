"""Recall and traceability rules. Pure: no I/O, no framework."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar
from uuid import UUID

T = TypeVar("T")


class NoticeTooLarge(ValueError):
    """One shipment entry does not fit in a notice even on its own: the notice cannot be sent."""


@dataclass(frozen=True)
class NoticeSize:
    """What a customer's notice costs in bytes: the message without shipments (envelope,
    headers, customer, and room for `part`/`parts`), and the most one message may hold."""

    base: int
    limit: int

    def fits(self, shipment_bytes: int, shipments: int) -> bool:
        """A message with these shipments (their entries joined by commas) fits the limit."""
        return self.base + shipment_bytes + max(0, shipments - 1) <= self.limit


def split_for_notices(
    shipments: Sequence[T],
    *,
    size_of: Callable[[T], int],
    size: NoticeSize,
    per_notice: int | None = None,
) -> list[list[T]]:
    """A customer's shipments in notices, in order, each under the message size limit: a part
    is closed before the next shipment would take it over the limit (or past `per_notice`
    shipments, when a count cap is set). Raises NoticeTooLarge when a single shipment cannot
    fit at all."""
    if per_notice is not None and per_notice < 1:
        raise ValueError("per_notice must be at least 1")
    parts: list[list[T]] = [[]]
    used = 0
    for shipment in shipments:
        entry = size_of(shipment)
        if not size.fits(entry, 1):
            raise NoticeTooLarge(
                f"one shipment entry of {entry} bytes with a notice base of {size.base} bytes"
                f" exceeds the {size.limit}-byte message limit"
            )
        current = parts[-1]
        full = per_notice is not None and len(current) >= per_notice
        if current and (full or not size.fits(used + entry, len(current) + 1)):
            parts.append([])
            used = 0
        parts[-1].append(shipment)
        used += entry
    return parts


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
    start: UUID, edges: Iterable[Edge], *, forward: bool, max_depth: int | None = None
) -> dict[UUID, TraceNode]:
    """Every lot reachable from `start` (made from it when forward, its inputs when backward),
    with its depth, at any depth unless `max_depth` is given; cycles in bad data end the walk
    instead of looping."""
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
            if max_depth is not None and depth >= max_depth:
                continue
            for next_id in links.get(lot_id, ()):
                if next_id not in nodes:
                    nodes[next_id] = TraceNode(next_id, depth + 1, [lot_id])
                    following.append(next_id)
                elif lot_id not in nodes[next_id].parents and next_id != start:
                    nodes[next_id].parents.append(lot_id)
        frontier = following
    return nodes


def made_from(roots: Sequence[UUID], edges: Iterable[Edge]) -> dict[UUID, UUID]:
    """Every lot made from the roots at any depth (the genealogy has no depth limit, in recall
    as in inventory), each with the root it descends from most directly. A root is not made
    from the roots; cycles in bad data end the walk."""
    children: dict[UUID, list[UUID]] = defaultdict(list)
    for edge in edges:
        children[edge.input_lot_id].append(edge.lot_id)
    via: dict[UUID, UUID] = {}
    seen = set(roots)
    frontier = [(root, root) for root in roots]
    while frontier:
        following = []
        for lot_id, root in frontier:
            for child in sorted(children.get(lot_id, ())):
                if child not in seen:
                    seen.add(child)
                    via[child] = root
                    following.append((child, root))
        frontier = following
    return via


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
