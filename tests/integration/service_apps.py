"""Running a service's ASGI app in the test's event loop, against a real broker and a real
PostgreSQL: HTTP goes through httpx in process, Kafka and SQL over the network.

Authentication stays on, as in production: a test's settings carry `api_keys(...)` (for
most, `ADMIN_API_KEYS`) and `running()` sends `ADMIN_KEY` unless told otherwise."""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import httpx
from fastapi import FastAPI
from pydantic import SecretStr

from lottrace.infra import TansuBroker, wait_until
from shared.runtime.auth import MIN_ITERATIONS, Role, hash_key
from shared.runtime.service import ServiceRuntime
from shared.runtime.settings import KafkaSettings, ServiceSettings

ADMIN_KEY = "integration-tests-admin-key-4f1c0d"


def kafka_env(broker: TansuBroker) -> dict[str, Any]:
    return {
        "bootstrap_servers": broker.bootstrap_servers,
        "enable_idempotence": False,
        "session_timeout_ms": 6000,
    }


SettingsT = TypeVar("SettingsT", bound=ServiceSettings)


def service_settings(
    settings_type: type[SettingsT], database_url: str, broker: TansuBroker, **fields: Any
) -> SettingsT:
    """A service's settings against this test's database and broker; `fields` set the rest
    (`api_keys`, `consumer_batch_timeout_ms`, ...), so a test names only what it cares about."""
    return settings_type(
        database_url=database_url, kafka=KafkaSettings(**kafka_env(broker)), **fields
    )


@functools.cache
def _hash(key: str) -> str:
    # The cheapest cost the services accept: the tests hash many keys.
    return hash_key(key, iterations=MIN_ITERATIONS)


def api_keys(*entries: tuple[str, str, tuple[Role, ...]]) -> SecretStr:
    """API_KEYS for test settings from (name, key, roles) triples."""
    return SecretStr(
        json.dumps(
            [
                {"name": name, "roles": [role.value for role in roles], "hash": _hash(key)}
                for name, key, roles in entries
            ]
        )
    )


ADMIN_API_KEYS = api_keys(("admin", ADMIN_KEY, (Role.ADMIN,)))
# What most tests run a service with: a consumer hands its batch over after 20 ms rather than
# waiting the default 50, and the API takes ADMIN_KEY.
QUICK_FIELDS: dict[str, Any] = {"consumer_batch_timeout_ms": 20, "api_keys": ADMIN_API_KEYS}


def quick_settings(
    settings_type: type[SettingsT], database_url: str, broker: TansuBroker, **fields: Any
) -> SettingsT:
    """`service_settings` with QUICK_FIELDS; `fields` override them or set the rest."""
    return service_settings(settings_type, database_url, broker, **{**QUICK_FIELDS, **fields})


@asynccontextmanager
async def running(
    app: FastAPI, *, api_key: str | None = ADMIN_KEY
) -> AsyncIterator[httpx.AsyncClient]:
    """Start the app's lifespan, wait until it is ready, and give an HTTP client to it that
    sends `api_key` as a bearer token (none when None)."""
    async with app.router.lifespan_context(app):
        runtime: ServiceRuntime = app.state.runtime
        await asyncio.wait_for(runtime.started.wait(), 60)
        transport = httpx.ASGITransport(app=app)
        headers = {"Authorization": f"Bearer {api_key}"} if api_key is not None else {}
        ops_port = runtime.settings.ops_http_port
        # /readyz is served on the operations port when there is one, over real HTTP.
        ops_url = f"http://127.0.0.1:{ops_port}" if ops_port else None
        async with (
            httpx.AsyncClient(
                transport=transport, base_url="http://service", headers=headers
            ) as client,
            httpx.AsyncClient(base_url=ops_url or "http://service", transport=None) as ops,
        ):
            probe = ops if ops_url else client

            async def ready() -> bool:
                return (await probe.get("/readyz")).status_code == 200

            await wait_until(ready, timeout=30, what="service ready")
            yield client


def assert_error(response: httpx.Response, status: int, error: str) -> dict[str, Any]:
    """The JSON body of a refusal, once checked to have this status and error code."""
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["error"] == error
    return body


async def until_served(
    client: httpx.AsyncClient,
    path: str,
    accept: Callable[[dict[str, Any]], object],
    *,
    what: str | None = None,
) -> dict[str, Any]:
    """The JSON body of `GET path` once it answers 200 with a body `accept` takes (it may still
    be catching up with the topics); fails after 30 s."""
    found: dict[str, Any] = {}

    async def check() -> bool:
        response = await client.get(path)
        if response.status_code != 200:
            return False
        found.clear()
        found.update(response.json())
        return bool(accept(found))

    await wait_until(check, timeout=30, what=what or f"{path} as expected")
    return found
