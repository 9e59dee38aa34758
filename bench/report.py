"""Writing the results: JSON for machines, a table and a plot for people."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

NOTES_START = "<!-- notes:start -->"
NOTES_END = "<!-- notes:end -->"

# (section, key, label, unit, target, met) -- met(value) says whether the target holds.
TARGETS: list[tuple[str, str, str, str, str, Any]] = [
    (
        "pipeline",
        "order_lines_per_s",
        "pipeline order lines/s (sustained)",
        "lines/s",
        ">= 2,000",
        lambda v: v >= 2000,
    ),
    ("pipeline", "baseline_lines_per_s", "raw baseline order lines/s", "lines/s", "", None),
    ("pipeline", "ratio_to_baseline", "ratio to raw baseline", "", ">= 0.5", lambda v: v >= 0.5),
    ("pipeline", "p50_ms", "placed -> shipped p50 at half rate", "ms", "", None),
    (
        "pipeline",
        "p99_ms",
        "placed -> shipped p99 at half rate",
        "ms",
        "< 500",
        lambda v: v < 500,
    ),
    ("receiving", "receipts_per_s", "receipts over HTTP", "receipts/s", "", None),
    ("recall", "shipment_lines", "shipment lines in the projection", "lines", "1,000,000", None),
    ("recall", "customers", "customers of the recalled lot", "customers", "100,000", None),
    ("recall", "ingest_lines_per_s", "order-shipped ingest into recall", "lines/s", "", None),
    ("recall", "summary_s", "recall-issued after the request", "s", "<= 2", lambda v: v <= 2),
    (
        "recall",
        "all_notices_s",
        "every customer notice after the request",
        "s",
        "<= 3",
        lambda v: v <= 3,
    ),
    ("recall", "fsma_csv_s", "FSMA 204 sheet of the whole history (CSV)", "s", "", None),
    ("recall", "fsma_csv_mb", "its size", "MB", "", None),
    ("trace", "p99_ms", "trace forward/backward p99", "ms", "< 10", lambda v: v < 10),
    ("trace", "forward_p99_ms", "trace forward p99", "ms", "", None),
    ("trace", "backward_p99_ms", "trace backward p99", "ms", "", None),
    ("trace", "httpx_p99_ms", "the same calls timed by httpx (the client before 2026-12-07)",
     "ms", "", None),
    ("notice_paths", "sql_ms", "5,000 notices built in SQL (one chunk)", "ms", "", None),
    ("notice_paths", "model_ms", "the same built from the contract models", "ms", "", None),
    ("notice_paths", "model_over_sql", "contract models / SQL", "x", "", None),
    ("recall_loop", "responses_s", "100,000 recall responses ingested", "s", "< 10",
     lambda v: v < 10),
    ("recall_loop", "effectiveness_s", "effectiveness of the 100k-customer recall", "s", "< 1",
     lambda v: v < 1),
    ("recall_loop", "drill_s", "a drill of a lot in the 1M-line projection", "s", "< 2",
     lambda v: v < 2),
    ("recall_loop", "recalled_lot_drill_s", "a drill of the 100k-customer lot", "s", "", None),
    ("imports", "lots_rows_per_s", "lot rows imported (lottrace import)", "rows/s", "", None),
    ("imports", "lots_100k_s", "100,000 lot rows imported", "s", "< 120", lambda v: v < 120),
    ("imports", "shipments_rows_per_s", "shipment rows imported", "rows/s", "", None),
    ("imports", "shipments_100k_s", "100,000 shipment rows imported", "s", "< 120",
     lambda v: v < 120),
]  # fmt: skip


def _format(value: Any, unit: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, float):
        text = f"{value:,.2f}" if value < 100 else f"{value:,.0f}"
    else:
        text = f"{value:,}"
    return f"{text} {unit}".strip()


def _spread(value: Any, before: Any) -> str:
    """How far two runs' figures lie apart: their difference over their mean."""
    if not all(isinstance(v, int | float) and math.isfinite(v) for v in (value, before)):
        return ""
    mean = (abs(value) + abs(before)) / 2
    return f"{abs(value - before) / mean:.0%}" if mean else "0%"


def _row(metric: str, value: Any, before: Any, unit: str, target: str, verdict: str) -> str:
    previous = "" if before is None else _format(before, unit)
    return (
        f"| {metric} | {_format(value, unit)} | {previous} | {_spread(value, before)}"
        f" | {target} | {verdict} |"
    )


def _measured_alike(results: dict[str, Any], prior: dict[str, Any], section: str) -> dict[str, Any]:
    """The run before's figures of a section, if it measured them alike: a section that names
    its HTTP `client` (the traces) is not compared across clients."""
    before: dict[str, Any] = prior.get(section, {})
    alike = before.get("client") == results.get(section, {}).get("client")
    return before if alike else {}


def table(results: dict[str, Any], previous: dict[str, Any] | None = None) -> str:
    """Each figure of this run, the run before it (`previous`) and how far the two lie apart."""
    prior = previous or {}
    rows = [
        "| metric | value | previous run | spread | target | met |",
        "|---|---:|---:|---:|---|:---:|",
    ]
    for section, key, label, unit, target, met in TARGETS:
        value = results.get(section, {}).get(key)
        verdict = "" if met is None or value is None else ("yes" if met(value) else "**no**")
        before = _measured_alike(results, prior, section).get(key)
        rows.append(_row(f"`{section}.{key}`: {label}", value, before, unit, target, verdict))
    for name, mb in sorted(results.get("rss_mb", {}).items()):
        verdict = "yes" if mb < 200 else "**no**"
        before = prior.get("rss_mb", {}).get(name)
        rows.append(
            _row(
                f"`rss_mb.{name}`: peak resident memory",
                round(mb),
                None if before is None else round(before),
                "MB",
                "< 200 MB",
                verdict,
            )
        )
    rows += scaling_rows(results.get("scaling", {}), prior.get("scaling", {}))
    return "\n".join(rows)


FLAT = 2.0  # the target: cost at any history size within 2x of the cost at the smallest


def scaling_rows(scaling: dict[str, Any], previous: dict[str, Any] | None = None) -> list[str]:
    """The ratios of each history size's costs to the smallest size's, against FLAT."""
    rows = []
    prior = (previous or {}).get("ratios", {})
    for sizes, ratios in scaling.get("ratios", {}).items():
        larger, smaller = (int(n) for n in sizes.split("/"))
        for key, label in (("trace_p99", "trace p99"), ("allocation_per_line", "allocation")):
            value = ratios[key]
            verdict = "yes" if value <= FLAT else "**no**"
            metric = (
                f"`scaling.ratios.{sizes}.{key}`: {label}, {_lines(larger)} over"
                f" {_lines(smaller)} lines of history"
            )
            before = prior.get(sizes, {}).get(key)
            rows.append(_row(metric, value, before, "x", f"<= {FLAT:g} x", verdict))
    return rows


def _lines(n: int) -> str:
    return f"{n // 1_000_000}M" if n >= 1_000_000 else f"{n // 1_000}k"


def scaling_table(scaling: dict[str, Any], *, command: str) -> str:
    """Each history size's costs, measured by `command`."""
    rows = [
        f"| history (`{command}`) | trace p99 | p50 | forward p99 | backward p99 |"
        " allocation per line (median; min-max of batches) | loaded in |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for point in scaling.get("points", []):
        rows.append(
            f"| {point['shipment_lines']:,} lines | {point['trace_p99_ms']:.1f} ms"
            f" | {point.get('trace_p50_ms', float('nan')):.1f} ms"
            f" | {point['trace_forward_p99_ms']:.1f} ms | {point['trace_backward_p99_ms']:.1f} ms"
            f" | {point['allocation_us_per_line']:.0f} us"
            f" ({point['allocation_us_per_line_min']:.0f}"
            f"-{point['allocation_us_per_line_max']:.0f})"
            f" | {point['load_s']:.0f} s |"
        )
    return "\n".join(rows)


SCALE_JSON = Path(__file__).parent / "results" / "scale.json"  # written by `make bench-scale`


def scale_results() -> dict[str, Any] | None:
    """The last `make bench-scale` (histories up to 10M lines), if there is one."""
    return json.loads(SCALE_JSON.read_text()) if SCALE_JSON.exists() else None


def plot(results: dict[str, Any], path: Path, scale: dict[str, Any] | None = None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = "scaling" in results or scale is not None
    figure, axes = plt.subplots(
        3 if curves else 2, 1, figsize=(9, 9.8 if curves else 6.5), constrained_layout=True
    )
    _plot_throughput(axes[0], results["pipeline"])
    _plot_latency(axes[1], results["pipeline"])
    if curves:
        _plot_scaling(axes[2], results.get("scaling"), scale)
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _plot_throughput(top: Any, pipeline: dict[str, Any]) -> None:
    top.plot(pipeline["throughput_timeline"], label="lottrace (4 services)", color="#1f77b4")
    top.plot(pipeline["baseline_timeline"], label="raw baseline", color="#999999", linestyle="--")
    top.axhline(2000, color="#d62728", linewidth=0.8, label="target 2,000 lines/s")
    top.set_title("Order lines shipped per second, all orders placed at once")
    top.set_xlabel("seconds")
    top.set_ylabel("order lines / s")
    top.legend()


def _plot_latency(bottom: Any, pipeline: dict[str, Any]) -> None:
    latencies = pipeline["latency_timeline_p99_ms"]
    bottom.plot(
        [v if v is not None else float("nan") for v in latencies],
        color="#2ca02c",
        label="p99 per second",
    )
    bottom.axhline(500, color="#d62728", linewidth=0.8, label="target 500 ms")
    bottom.set_title(
        f"Placed -> shipped latency at {pipeline['latency_rate_lines_per_s']:,.0f} lines/s"
    )
    bottom.set_xlabel("seconds (by time placed)")
    bottom.set_ylabel("ms")
    bottom.legend()


def _plot_scaling(axis: Any, bench: dict[str, Any] | None, scale: dict[str, Any] | None) -> None:
    """Trace p99 (left axis) and allocation per line (right) against the history's size."""
    cost = axis.twinx()
    for scaling, style, name in ((bench, "-", "make bench"), (scale, ":", "make bench-scale")):
        points = (scaling or {}).get("points", [])
        if not points:
            continue
        lines = [p["shipment_lines"] for p in points]
        for key, color, label in (
            ("trace_forward_p99_ms", "#1f77b4", "trace forward p99"),
            ("trace_backward_p99_ms", "#17becf", "trace backward p99"),
            ("trace_p50_ms", "#2ca02c", "trace p50"),
        ):
            axis.plot(lines, [p.get(key, math.nan) for p in points], style, marker="o", color=color,
                      label=f"{label} ({name})")  # fmt: skip
        cost.plot(lines, [p["allocation_us_per_line"] for p in points], style, marker="s",
                  color="#ff7f0e", label=f"allocation per line ({name})")  # fmt: skip
    axis.set_xscale("log")
    axis.set_ylim(bottom=0)
    cost.set_ylim(bottom=0)
    axis.set_title("Cost against the history: shipment lines in the projections")
    axis.set_xlabel("shipment lines of history (log)")
    axis.set_ylabel("trace p99, ms")
    cost.set_ylabel("allocation, us per order line")
    handles, labels = axis.get_legend_handles_labels()
    more_handles, more_labels = cost.get_legend_handles_labels()
    axis.legend(handles + more_handles, labels + more_labels, fontsize=7, loc="best")


def scaling_section(results: dict[str, Any], scale: dict[str, Any] | None, command: str) -> str:
    parts = []
    if "scaling" in results:
        parts.append(scaling_table(results["scaling"], command=command))
    if scale is not None:
        measured = f"make bench-scale, {scale.get('finished_at', 'n/a')}"
        parts.append(scaling_table(scale, command=measured))
        parts.append(
            "\n".join(
                f"- `make bench-scale` ratio {sizes}: trace p99 {r['trace_p99']:.2f} x"
                f" (p50 {r.get('trace_p50', float('nan')):.2f} x), allocation per line"
                f" {r['allocation_per_line']:.2f} x (target <= {FLAT:g} x)"
                for sizes, r in scale.get("ratios", {}).items()
            )
        )
    return "\n\n".join(parts) if parts else "Not measured in this run."


def markdown(
    results: dict[str, Any],
    *,
    command: str,
    plot_name: str,
    notes: str,
    scale: dict[str, Any] | None = None,
    previous: dict[str, Any] | None = None,
) -> str:
    machine = results["machine"]
    return f"""# Benchmarks

Measured by `{command}` on {results["finished_at"]} ({results["size"]} size). Raw results:
`bench/results/latest.json`. Machine: {machine["cpus"]} CPUs ({machine["cpu_model"]}),
{machine["memory_gb"]} GB, {machine["system"]}, Python {machine["python"]}. Broker (Tansu),
PostgreSQL (fsync on) and the services all run on this one machine. {_previous_line(previous)}

{table(results, previous)}

![throughput, latency and cost against history]({plot_name})

## Cost against the history

{scaling_section(results, scale, command)}

{_what_each_figure_measures(results)}
{NOTES_START}
{notes.strip()}
{NOTES_END}
"""


def _what_each_figure_measures(results: dict[str, Any]) -> str:
    receiving = results.get("receiving", {})
    recall = results.get("recall", {})
    notice_customers = results.get("notice_paths", {}).get("customers", 0)
    return f"""## What each figure measures

- **Pipeline order lines/s**: {results["pipeline"]["order_lines"]:,} order lines (orders of
  one to five lines) published to `order-placed` at once; the time from the first publish
  until the last line appears on `order-shipped`, with inventory (FEFO allocation),
  fulfillment (`auto_ship`), and the `order-shipped` consumers (inventory, recall) all
  working. Stock: {receiving.get("lots", "n/a")} lots, of which
  {receiving.get("expired_lots", "n/a")} expired and {receiving.get("held_lots", "n/a")} on
  hold, plus {receiving.get("produced_lots", "n/a")} lots produced from ingredient lots.
- **Raw baseline**: the same hops (consume `order-placed` twice, write with an inbox, produce,
  consume, write, produce `order-shipped`, consume it twice) by minimal aiokafka + asyncpg
  loops, one process per role, on the same broker and PostgreSQL in the same run
  (`bench/baseline.py`). The ratio is lottrace's rate divided by the baseline's.
- **Latency**: orders placed at half the measured rate for the configured time; each order
  from the moment it is sent to `order-placed` until its `order-shipped` reaches a consumer.
- **Receipts over HTTP**: `POST /receipts` with 16 concurrent clients, each a new lot with a
  generated lot code, committed with its `goods-received` outbox row.
- **Recall at scale**: a recall service alone, fed {recall.get("shipment_lines", 0):,}
  shipment lines ({recall.get("shipments", 0):,} `order-shipped` events) through the real
  topic; one lot is in the shipments of {recall.get("customers", 0):,} distinct customers.
  Times run from sending `POST /recalls` until the `recall-issued` summary, and until the last
  customer notice, as read from the `recall-issued` topic; the notices heard in each second
  are in `latest.json` (`recall.notices_per_second`), to tell a stall from a slow stream.
  Then `GET /reports/fsma204?format=csv` of the whole history, read to its last byte (the
  sheet is sent a UTC day of events at a time; the service's peak memory is under `rss_mb`).
- **Trace**: `GET /trace/lots/{{id}}/forward` and `/backward` for random lots (and every produced
  and ingredient lot), one request at a time after the pipeline run, once every consumer has
  caught up with it (as before the latency run: a trace then competes with no backlog). Since
  2026-12-07 each call is made twice in a row, by aiohttp (C parser; its times are the
  figures) and by httpx (pure-Python parser, the only client before: `trace.httpx_p99_ms`),
  which of the two goes first alternating from lot to lot (`bench/http_timing.py`). Before,
  each lot was traced once each way, by httpx.
- **Notice paths**: one chunk of {notice_customers:,} customer notices (3 shipments each) on an
  embedded PostgreSQL, written by the set-based SQL path (`db.write_notices`: PostgreSQL builds
  the CloudEvents) and by the contract models (`services/recall/notices.py`, encoded by
  `shared.contracts`, through the outbox), each rolled back, median of 3 (`bench/notices.py`;
  `python -m bench.notices` runs it alone). A test proves both write the same notices.
- **Recall loop**: on an embedded PostgreSQL, a projection of 1,000,000 shipment lines seeded
  in SQL, one lot of it shipped to 100,000 customers and recalled (`bench/recall_loop.py`;
  `python -m bench.recall_loop` runs it alone). Every customer answers (half acknowledge,
  half report units destroyed), through the service's handler in batches of 500, one
  transaction each, as the consumer hands them over (the broker is not in this figure). Then
  the effectiveness check of that recall (read, figured, as its JSON view), and drills of an
  ordinary lot (1,000 lines) and of the recalled lot, each with every stage.
- **Onboarding import**: `lottrace import lots` and `lottrace import shipments` of generated
  CSV files ({_format(results.get("imports", {}).get("rows"), "")} rows each; two locations per lot,
  5,000 customers) against receiving and fulfillment alone (`bench/imports.py`;
  `python -m bench.imports --rows N` runs it alone). From reading the file to the last batch
  of 500 committed with its events in the outbox; the 100,000-row time is measured, or
  scaled from the rows/s of a smaller run.
- **Cost against the history**: trace p99 and allocation cost per order line on histories of
  growing size, each loaded set-based into a recall and an inventory database on an embedded
  PostgreSQL (fsync off: the figure is the growth, not the commit) through the tables the
  migrations made, not the broker (`bench/scaling.py`, `bench/history.py`;
  `python -m bench.scaling --sizes N ...` runs it alone). Each history lot has 200 shipment
  lines at every size, so the answer of a trace stays the same size and only the history
  around it grows. Trace: the recall service's forward and backward routes called in process
  for 192 random lots. Allocation: sixteen batches of 200 new orders (about 600 lines) through
  inventory's `on_order_placed`, each one committed transaction, after one batch to warm up.
  All sizes are loaded first and then measured in sixteen rounds, each a slice of every
  measurement on every size in turn, so that the machine's load weighs on all sizes alike.
  `make bench` measures 100k and 1M lines (quick: 10k and 100k); `make bench-scale` adds 10M.
- **Memory**: peak resident set size of each service process: the kernel's high-water mark
  (`VmHWM` in `/proc/<pid>/status`), read twice a second and just before the process stops.
"""


def _previous_line(previous: dict[str, Any] | None) -> str:
    if previous is None:
        return "There is no earlier run of this size to compare with."
    return (
        f'"previous run" is the run before it, finished {previous["finished_at"]}; "spread"'
        " is how far the two lie apart: their difference over their mean."
    )


def previous_path(json_path: Path) -> Path:
    """Where the run before `json_path`'s is kept: `latest.json` -> `latest.previous.json`."""
    return json_path.with_suffix(".previous.json")


def previous_results(json_path: Path, size: str) -> dict[str, Any] | None:
    """The run before, if it was of the same size (a quick run is no yardstick for a full)."""
    path = previous_path(json_path)
    if not path.exists():
        return None
    previous: dict[str, Any] = json.loads(path.read_text())
    return previous if previous.get("size") == size else None


def write(results: dict[str, Any], *, json_path: Path, docs: Path, command: str) -> None:
    """Keep the run before as `<name>.previous.json`, then write this one and its page."""
    json_path.parent.mkdir(parents=True, exist_ok=True)
    if json_path.exists():
        json_path.replace(previous_path(json_path))
    json_path.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    render(
        results, docs=docs, command=command, previous=previous_results(json_path, results["size"])
    )


def render(
    results: dict[str, Any],
    *,
    docs: Path,
    command: str,
    previous: dict[str, Any] | None = None,
) -> None:
    """The page and its plot from `results`, keeping the notes between the markers."""
    scale = scale_results()
    docs.mkdir(parents=True, exist_ok=True)
    plot(results, docs / "benchmarks.png", scale)
    page = docs / "benchmarks.md"
    notes = ""
    if page.exists():
        existing = page.read_text()
        if NOTES_START in existing and NOTES_END in existing:
            notes = existing.split(NOTES_START, 1)[1].split(NOTES_END, 1)[0]
    page.write_text(
        markdown(
            results,
            command=command,
            plot_name="benchmarks.png",
            notes=notes,
            scale=scale,
            previous=previous,
        )
    )
