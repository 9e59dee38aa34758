"""Authentication and roles on real service apps (real PostgreSQL and broker): who may read,
receive, hold and recall; what stays open; and who the audit trail records."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest_asyncio

from lottrace.infra import TansuBroker, free_port, wait_until
from services.inventory.app import Settings as InventorySettings
from services.inventory.app import create_app as inventory_app
from services.recall.app import Settings as RecallSettings
from services.recall.app import create_app as recall_app
from services.receiving.app import Settings as ReceivingSettings
from services.receiving.app import create_app as receiving_app
from shared.contracts.events import GoodsReceived
from tests.integration.service_apps import (
    ADMIN_KEY,
    assert_error,
    quick_settings,
    running,
    service_settings,
)
from tests.integration.staff import CONTROLLER, KEYS, MANAGER, RECEIVER, SHIPPER, VIEWER, bearer
from tests.kafka_helpers import publish

RECEIPT = {"sku": "OJ-1L", "quantity": "12", "supplier": {"supplier_id": "GROVE"}}


def received(lot_id: uuid.UUID, sku: str = "OJ-1L") -> GoodsReceived:
    return GoodsReceived(
        receipt_id=f"R-{uuid.uuid4().hex[:8]}",
        lot_id=lot_id,
        lot_code=f"{sku}-{str(lot_id)[:6]}",
        sku=sku,
        quantity=10,
        location="MAIN",
        received_at=datetime.now(UTC),
    )


async def receive_and_wait_until_stocked(
    client: httpx.AsyncClient, broker: TansuBroker, lot_id: uuid.UUID
) -> None:
    await publish(broker.bootstrap_servers, received(lot_id))

    async def stocked() -> bool:
        lot = await client.get(f"/lots/{lot_id}")
        return lot.status_code == 200 and lot.json()["on_hand"] == "10"

    await wait_until(stocked, timeout=30, what="lot in stock")


@pytest_asyncio.fixture
async def receiving(database_url: str, broker: TansuBroker) -> AsyncIterator[httpx.AsyncClient]:
    settings = service_settings(ReceivingSettings, database_url, broker, api_keys=KEYS)
    async with running(receiving_app(settings), api_key=None) as client:
        yield client


async def test_without_a_valid_key_reads_and_mutations_get_401_with_a_bearer_challenge(
    receiving: httpx.AsyncClient,
) -> None:
    attempts = [
        await receiving.post("/receipts", json=RECEIPT),
        await receiving.get("/lots"),
        await receiving.put("/products/OJ-1L", json={"name": "Juice"}),
        await receiving.post("/receipts", json=RECEIPT, headers=bearer("not-a-key-anyone-has-1")),
        await receiving.get("/lots", headers={"X-API-Key": "not-a-key-anyone-has-2"}),
        await receiving.get("/lots", headers={"Authorization": f"Basic {VIEWER}"}),
    ]

    for response in attempts:
        body = assert_error(response, 401, "unauthorized")
        assert response.headers["WWW-Authenticate"] == "Bearer"
        assert VIEWER not in body["detail"]
    assert "Authorization: Bearer" in attempts[0].json()["detail"]
    assert attempts[3].json()["detail"] == "unknown API key"
    assert (await receiving.get("/lots", headers=bearer(ADMIN_KEY))).status_code == 200


async def test_a_caller_is_checked_before_the_body_it_sent(receiving: httpx.AsyncClient) -> None:
    """What a body lacks is told only to callers allowed to send it."""

    async def send(body: bytes, key: str | None) -> httpx.Response:
        headers = {"Content-Type": "application/json", **(bearer(key) if key else {})}
        return await receiving.post("/receipts", content=body, headers=headers)

    malformed, incomplete = b'{"sku": ', b'{"quantity": "-3"}'
    for body in (malformed, incomplete):
        assert_error(await send(body, None), 401, "unauthorized")
        assert_error(await send(body, VIEWER), 403, "forbidden")
    assert_error(await send(malformed, RECEIVER), 400, "malformed_json")
    assert_error(await send(incomplete, RECEIVER), 422, "invalid_request")


async def test_a_viewer_reads_but_cannot_receive_and_a_receiver_receives_but_cannot_read(
    receiving: httpx.AsyncClient,
) -> None:
    refused = await receiving.post("/receipts", json=RECEIPT, headers=bearer(VIEWER))
    by_bearer = await receiving.post("/receipts", json=RECEIPT, headers=bearer(RECEIVER))
    by_header = await receiving.post("/receipts", json=RECEIPT, headers={"X-API-Key": RECEIVER})
    product = await receiving.put(
        "/products/OJ-1L", json={"name": "Orange juice 1 l"}, headers=bearer(VIEWER)
    )
    lots = await receiving.get("/lots", params={"sku": "OJ-1L"}, headers=bearer(VIEWER))
    receiver_reads = await receiving.get("/lots", headers=bearer(RECEIVER))
    lot_id = by_bearer.json()["lot_id"]

    body = assert_error(refused, 403, "forbidden")
    assert body["detail"] == "POST /receipts needs the receiver role"
    assert by_bearer.status_code == 201, by_bearer.text
    assert by_header.status_code == 201, by_header.text
    assert assert_error(product, 403, "forbidden")["detail"] == (
        "PUT /products/{sku} needs the receiver role"
    )
    assert lots.status_code == 200
    assert {lot["lot_id"] for lot in lots.json()} >= {lot_id}
    assert assert_error(receiver_reads, 403, "forbidden")["detail"] == (
        "GET /lots needs the viewer role"
    )
    one = await receiving.get(f"/lots/{lot_id}", headers=bearer(VIEWER))
    assert one.status_code == 200


async def test_health_readiness_metrics_and_the_api_documents_need_no_key(
    receiving: httpx.AsyncClient,
) -> None:
    for path in ("/healthz", "/readyz", "/metrics", "/docs", "/openapi.json"):
        response = await receiving.get(path)
        assert response.status_code == 200, f"{path}: {response.text}"

    document = (await receiving.get("/openapi.json")).json()
    schemes = document["components"]["securitySchemes"]
    receipts = document["paths"]["/receipts"]["post"]
    lots = document["paths"]["/lots"]["get"]
    assert schemes["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "`Authorization: Bearer <API key>`",
    }
    assert schemes["apiKey"]["in"] == "header"
    assert schemes["apiKey"]["name"] == "X-API-Key"
    assert receipts["security"] == [{"bearer": []}, {"apiKey": []}]
    assert receipts["x-required-role"] == "receiver"
    assert lots["x-required-role"] == "viewer"
    assert {"401", "403"} <= set(receipts["responses"])
    assert "security" not in document["paths"]["/healthz"]["get"]


async def test_only_a_recall_manager_issues_and_closes_a_recall_and_is_recorded_as_its_actor(
    database_url: str, broker: TansuBroker
) -> None:
    settings = service_settings(RecallSettings, database_url, broker, api_keys=KEYS)
    lot_id = uuid.uuid4()
    recall = {"reason": "off taste", "scope": {"lot_ids": [str(lot_id)]}}
    async with running(recall_app(settings), api_key=None) as client:
        await publish(broker.bootstrap_servers, received(lot_id))

        async def known() -> bool:
            trace = await client.get(f"/trace/lots/{lot_id}/backward", headers=bearer(VIEWER))
            return trace.status_code == 200

        await wait_until(known, timeout=30, what="recall knows the lot")

        for key in (SHIPPER, RECEIVER, VIEWER, CONTROLLER):
            refused = await client.post("/recalls", json=recall, headers=bearer(key))
            body = assert_error(refused, 403, "forbidden")
            assert body["detail"] == "POST /recalls needs the recall-manager role"
        assert_error(await client.post("/recalls", json=recall), 401, "unauthorized")
        issued = await client.post(
            "/recalls", json=recall, headers={**bearer(MANAGER), "X-Actor": "mallory"}
        )
        assert issued.status_code == 202, issued.text
        recall_id = issued.json()["recall_id"]
        close_refused = await client.post(f"/recalls/{recall_id}/close", headers=bearer(VIEWER))
        closed = await client.post(
            f"/recalls/{recall_id}/close", headers={**bearer(MANAGER), "X-Actor": "mallory"}
        )
        view = (await client.get(f"/recalls/{recall_id}", headers=bearer(VIEWER))).json()

    assert assert_error(close_refused, 403, "forbidden")["detail"] == (
        "POST /recalls/{recall_id}/close needs the recall-manager role"
    )
    assert closed.status_code == 200, closed.text
    assert view["requested_by"] == "rm-carla"  # the key's name; X-Actor is ignored
    assert view["closed_by"] == "rm-carla"


async def test_a_hold_records_the_key_name_and_needs_the_inventory_controller_role(
    database_url: str, broker: TansuBroker
) -> None:
    settings = quick_settings(InventorySettings, database_url, broker, api_keys=KEYS)
    lot_id = uuid.uuid4()
    async with running(inventory_app(settings), api_key=VIEWER) as client:
        await receive_and_wait_until_stocked(client, broker, lot_id)
        refused = await client.post(f"/lots/{lot_id}/hold", json={"reason": "mould"})
        receiver = await client.post(
            f"/lots/{lot_id}/hold", json={"reason": "mould"}, headers=bearer(RECEIVER)
        )
        held = await client.post(
            f"/lots/{lot_id}/hold",
            json={"reason": "mould seen"},
            headers={**bearer(CONTROLLER), "X-Actor": "mallory"},
        )
        released = await client.post(
            f"/lots/{lot_id}/release", json={"reason": "lab clear"}, headers=bearer(ADMIN_KEY)
        )
        counted = await client.post(
            "/adjustments",
            json={"lot_id": str(lot_id), "location": "MAIN", "counted": "9", "reason": "count"},
            headers=bearer(CONTROLLER),
        )
        history = (await client.get(f"/lots/{lot_id}/history")).json()

    assert assert_error(refused, 403, "forbidden")["detail"] == (
        "POST /lots/{lot_id}/hold needs the inventory-controller role"
    )
    assert_error(receiver, 403, "forbidden")
    assert held.status_code == 200, held.text
    assert released.status_code == 200, released.text
    assert counted.status_code == 201, counted.text
    causes = [(entry["change"], entry["cause"]) for entry in history]
    assert ("hold", "user:qa-bob") in causes
    assert ("release", "user:admin") in causes
    assert all("mallory" not in cause for _, cause in causes)


async def test_with_auth_disabled_everything_is_open_and_x_actor_names_the_actor(
    database_url: str, broker: TansuBroker
) -> None:
    settings = quick_settings(
        InventorySettings, database_url, broker, auth_mode="disabled", api_keys=None
    )
    lot_id = uuid.uuid4()
    async with running(inventory_app(settings), api_key=None) as client:
        await receive_and_wait_until_stocked(client, broker, lot_id)
        held = await client.post(
            f"/lots/{lot_id}/hold", json={"reason": "demo"}, headers={"X-Actor": "demo-dan"}
        )
        released = await client.post(f"/lots/{lot_id}/release", json={"reason": "demo"})
        history = (await client.get(f"/lots/{lot_id}/history")).json()

    assert held.status_code == 200, held.text
    assert released.status_code == 200, released.text
    causes = [(entry["change"], entry["cause"]) for entry in history]
    assert ("hold", "user:demo-dan") in causes
    assert ("release", "user:anonymous") in causes


async def test_without_configured_keys_a_service_starts_refuses_requests_and_is_not_ready(
    database_url: str, broker: TansuBroker
) -> None:
    settings = service_settings(ReceivingSettings, database_url, broker)
    app = receiving_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:

            async def started() -> bool:
                readiness = (await client.get("/readyz")).json()
                return "starting" not in readiness["checks"]

            await wait_until(started, timeout=60, what="service started")
            health = await client.get("/healthz")
            readiness = await client.get("/readyz")
            read = await client.get("/lots", headers=bearer(ADMIN_KEY))
            write = await client.post("/receipts", json=RECEIPT, headers=bearer(ADMIN_KEY))

    assert health.status_code == 200
    assert readiness.status_code == 503
    assert readiness.json()["checks"]["database"] == "ok"
    assert "no API keys are configured" in readiness.json()["checks"]["auth"]
    for response in (read, write):
        body = assert_error(response, 401, "unauthorized")
        assert "no API keys are configured" in body["detail"]


async def test_the_operations_port_serves_health_and_metrics_instead_of_the_main_port(
    database_url: str, broker: TansuBroker
) -> None:
    port = free_port()
    settings = service_settings(
        ReceivingSettings,
        database_url,
        broker,
        api_keys=KEYS,
        ops_http_port=port,
    )
    async with (
        running(receiving_app(settings), api_key=VIEWER) as client,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as ops,
    ):
        main = [await client.get(path) for path in ("/healthz", "/readyz", "/metrics")]
        served = [await ops.get(path) for path in ("/healthz", "/readyz", "/metrics")]
        api_on_ops = await ops.get("/lots", headers=bearer(VIEWER))
        api_on_main = await client.get("/lots")
        main_paths = set((await client.get("/openapi.json")).json()["paths"])

    assert [response.status_code for response in main] == [404, 404, 404]
    assert [response.status_code for response in served] == [200, 200, 200]
    assert "lottrace_" in served[2].text
    assert api_on_ops.status_code == 404
    assert api_on_main.status_code == 200
    assert not {"/healthz", "/readyz", "/metrics"} & main_paths
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as after:
        try:
            await after.get("/healthz", timeout=2)
        except httpx.TransportError:
            pass
        else:
            raise AssertionError("the operations port still answers after shutdown")
