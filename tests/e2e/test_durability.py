"""Nothing acknowledged is lost (issue 11): a drained stop and start on the same data folder,
kill -9 of the whole platform process group, kill -9 of the embedded broker and of each
service under the supervisor.

What "acknowledged" means here: an HTTP 2xx from one of our services, or an upstream event
that one of our services consumed (its inbox row is in the database). An upstream event the
embedded broker held and nobody had consumed yet can be lost at a crash of the broker (its
log is in memory only; README): these tests do not count on it.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from lottrace.cli import app as cli
from lottrace.devstack import Platform, drain
from tests.e2e.conftest import Clients
from tests.e2e.test_local_platform import platform_on, running, stock
from tests.e2e.test_orange_juice import (
    allocated,
    eventually,
    place_order,
    receive,
    ship,
    shipments_known_to_recall,
    unique,
)

ORDER_SOURCE = "/oms/eu-1"


@pytest.fixture
def home() -> Iterator[Path]:
    """A data folder that PostgreSQL (run as `nobody` under root) can reach: not below
    pytest's 0700 tmp_path, where the data would be moved out to /var/lib/lottrace."""
    folder = Path(tempfile.mkdtemp(prefix="lottrace-durable-"))
    folder.chmod(0o755)
    try:
        yield folder / "home"
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def lottrace_check(platform: Platform, *, wait: float = 60) -> tuple[int, str]:
    """`lottrace check --wait` against the platform's databases and broker."""
    args = [
        "check",
        f"--wait={wait}",
        *(f"--{name}-database-url={url}" for name, url in platform.database_urls.items()),
        f"--bootstrap={platform.bootstrap_servers}",
    ]
    result = CliRunner().invoke(cli, args)
    return result.exit_code, result.output


async def assert_check_clean(platform: Platform, *, wait: float = 60) -> str:
    code, output = await asyncio.to_thread(lottrace_check, platform, wait=wait)
    assert code == 0, output
    assert "consistent:" in output, output
    print(output.strip().splitlines()[-1])
    return output


async def republished(platform: Platform) -> dict[str, int]:
    """Each service's `lottrace_outbox_republished_total` (its /metrics)."""
    found = {}
    async with httpx.AsyncClient(timeout=5) as client:
        for name, url in platform.urls().items():
            text = (await client.get(f"{url}/metrics")).text
            match = re.search(r"^lottrace_outbox_republished_total (\S+)$", text, re.MULTILINE)
            found[name] = int(float(match.group(1))) if match else 0
    return found


async def fetch_all(clients: Clients, paths: dict[str, tuple[str, str]]) -> dict[str, Any]:
    """GET every (service, path); each must answer 200."""
    views = {}
    for label, (service, path) in paths.items():
        client: httpx.AsyncClient = getattr(clients, service)
        response = await client.get(path)
        assert response.status_code == 200, f"{label}: {response.status_code} {response.text}"
        views[label] = response.json()
    return views


def order_served(order: dict[str, Any]) -> bool:
    """Allocated (and maybe shipped already, under auto_ship)."""
    return order["status"] == "shipped" or (
        bool(order["allocations"]) and order["status"] == "open"
    )


# --------------------------------------------------------------------------------- 1. restart


@pytest.mark.timeout(240)
async def test_a_drained_restart_keeps_lots_orders_shipments_and_the_recall(home: Path) -> None:
    sku, recalled_sku = unique("SKU"), unique("RSKU")
    ann, ben, cat = unique("SO"), unique("SO"), unique("SO")
    first = platform_on(home)
    async with running(first) as clients:
        lot = await receive(clients, sku, 10, expires_in=30)
        bad = await receive(clients, recalled_sku, 6, expires_in=30)
        await place_order(clients, ann, "ANN", sku, 3)
        await place_order(clients, ben, "BEN", sku, 2)
        await place_order(clients, cat, "CAT", recalled_sku, 4)
        for order in (ann, ben, cat):
            await allocated(clients, order)
        shipped = {order: (await ship(clients, order))["shipment_id"] for order in (ann, cat)}
        await shipments_known_to_recall(clients, bad["lot_id"], 1)
        issued = await clients.recall.post(
            "/recalls",
            json={"reason": "sealing defect", "classification": "I",
                  "scope": {"lot_ids": [bad["lot_id"]]}},
        )  # fmt: skip
        assert issued.status_code == 202, issued.text
        recall_id = issued.json()["recall_id"]
        await eventually(
            lambda: clients.recall.get(f"/recalls/{recall_id}"),
            lambda recall: recall["notices_complete"] and recall["notified_customers"] == 1,
        )
        await eventually(
            lambda: clients.inventory.get(f"/lots/{bad['lot_id']}"),
            lambda view: view["status"] == "recalled",
        )
        await eventually(
            lambda: clients.fulfillment.get(f"/orders/{ben}"),
            lambda order: order["status"] == "open" and len(order["allocations"]) == 1,
        )
        paths = {
            "receiving lot": ("receiving", f"/lots/{lot['lot_id']}"),
            "receiving recalled lot": ("receiving", f"/lots/{bad['lot_id']}"),
            "inventory lot": ("inventory", f"/lots/{lot['lot_id']}"),
            "inventory recalled lot": ("inventory", f"/lots/{bad['lot_id']}"),
            "inventory history": ("inventory", f"/lots/{lot['lot_id']}/history"),
            **{f"order {o}": ("fulfillment", f"/orders/{o}") for o in (ann, ben, cat)},
            "recall": ("recall", f"/recalls/{recall_id}"),
            "trace forward": ("recall", f"/trace/lots/{bad['lot_id']}/forward"),
            "trace order": ("recall", f"/trace/orders/{cat}"),
        }
        before = await fetch_all(clients, paths)
        assert await drain(first, say=print), "the drain did not finish"

    second = platform_on(home)
    async with running(second) as clients:
        # The retained outbox rows go out again to the new (empty) broker; every consumer
        # skips them by its inbox. Wait until that is all consumed, then compare.
        await assert_check_clean(second)
        print(f"re-published at restart: {await republished(second)}")
        after = await fetch_all(clients, paths)
        assert after == before

        assert [s["shipment_id"] for s in after[f"order {ann}"]["shipments"]] == [shipped[ann]]
        assert after[f"order {cat}"]["status"] == "shipped"
        assert after["recall"]["notified_customers"] == 1
        assert after["inventory recalled lot"]["status"] == "recalled"
        counts = await stock(clients, lot["lot_id"])
        assert (counts["received"], counts["shipped"]) == ("10", "3")
        assert (counts["on_hand"], counts["reserved"], counts["available"]) == ("7", "2", "5")

        dan = unique("SO")
        await place_order(clients, dan, "DAN", sku, 4)
        placed = await allocated(clients, dan)
        assert [(a["lot_id"], a["quantity"]) for a in placed["allocations"]] == [
            (lot["lot_id"], "4")
        ]
        counts = await stock(clients, lot["lot_id"])
        assert (counts["on_hand"], counts["reserved"], counts["available"]) == ("7", "6", "1")
        await assert_check_clean(second)
