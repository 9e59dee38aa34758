"""How `lottrace check` shows what it found: one line when clean, else a table of the
differences and the work still in flight; or one JSON document for machines."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from lottrace.check.compare import Activity, CheckReport, Verdict


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'s' if number != 1 else ''}"


def summary(report: CheckReport) -> str:
    counted = f"{_count(report.lots, 'lot')}, {_count(report.shipments, 'shipment')}"
    if report.verdict is Verdict.CLEAN:
        tail = "" if report.settled else " (work was in flight: see --wait)"
        return f"consistent: {counted} agree across the services{tail}"
    found = f"{_count(len(report.differences), 'difference')} over {counted}"
    if report.verdict is Verdict.IN_FLIGHT:
        return f"{found}, with work in flight that may explain them: run again with --wait"
    return found


def waiting_line(activity: Activity) -> str:
    return "waiting for work in flight: " + "; ".join(activity.in_flight())


def print_report(report: CheckReport, console: Console) -> None:
    if report.differences:
        table = Table(title="Differences", title_justify="left")
        table.add_column("kind", no_wrap=True)
        table.add_column("services", no_wrap=True)
        table.add_column("what", overflow="fold")
        for difference in report.differences:
            table.add_row(
                difference.kind.value,
                " / ".join(difference.services),
                escape(difference.detail),
            )
        console.print(table)
    in_flight = report.activity.in_flight()
    if in_flight:
        console.print("[yellow]in flight:[/]")
        for line in in_flight:
            console.print(f"  {escape(line)}")
    style = {Verdict.CLEAN: "green", Verdict.DIFFERENT: "red", Verdict.IN_FLIGHT: "yellow"}
    console.print(f"[{style[report.verdict]}]{escape(summary(report))}[/]")


def report_document(report: CheckReport) -> dict[str, Any]:
    return {
        "verdict": report.verdict.value,
        "exit_code": report.exit_code,
        "summary": summary(report),
        "lots": report.lots,
        "shipments": report.shipments,
        "settled": report.settled,
        "differences": [
            {
                "kind": d.kind.value,
                "key": d.key,
                "services": list(d.services),
                "detail": d.detail,
            }
            for d in report.differences
        ],
        "outboxes": [
            {"service": o.service, "unpublished": o.unpublished, "oldest_seconds": o.oldest_seconds}
            for o in report.activity.outboxes
        ],
        "consumer_lag": [
            {"group": g.group, "topic": g.topic, "lag": g.lag} for g in report.activity.lags
        ],
    }
