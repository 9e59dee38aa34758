"""A service given settings it cannot start with says which variable and why, in one line
each, with exit status 2 and no traceback, and never echoes a value (it may hold a password)."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic_settings import BaseSettings

from services.fulfillment.app import Settings
from services.inventory.app import Settings as InventorySettings
from services.recall.app import Settings as RecallSettings
from shared.runtime.settings import InvalidSettings, load_settings

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("settings", "variable", "value", "said"),
    [
        (Settings, "CONSUMER_BATCH_TIMEOUT_MS", "not a number", "valid integer"),
        (Settings, "FULFILLMENT_HTTP_PORT", "99999", "less than or equal to 65535"),
        (Settings, "KAFKA_SESSION_TIMEOUT_MS", "5", "greater than or equal to 1000"),
        (Settings, "FULFILLMENT_DATABASE_URL", "mysql://app:s3cret@db/x", "postgresql://"),
        (RecallSettings, "RECALL_NOTICE_CHUNK", "0", "greater than or equal to 1"),
        (InventorySettings, "INVENTORY_EXPIRY_SWEEP_SECONDS", "0", "greater than 0"),
        (Settings, "EXPORT_SLOTS", "10", "less than DB_POOL_MAX (10)"),
        (Settings, "DB_POOL_MAX", "1", "greater than or equal to 2"),
        (Settings, "EXPORT_STALL_SECONDS", "0", "greater than or equal to 1"),
    ],
)
def test_each_refused_variable_is_named_with_why(
    monkeypatch: pytest.MonkeyPatch,
    settings: type[BaseSettings],
    variable: str,
    value: str,
    said: str,
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(InvalidSettings) as refusal:
        load_settings(settings)
    assert str(refusal.value).startswith(f"{variable}: ")
    assert said in str(refusal.value)


@pytest.mark.parametrize(("pool", "slots"), [("10", 3), ("2", 1), ("3", 1), ("30", 10)])
def test_exports_take_a_third_of_the_pool_unless_told(
    monkeypatch: pytest.MonkeyPatch, pool: str, slots: int
) -> None:
    monkeypatch.setenv("DB_POOL_MAX", pool)
    assert load_settings(Settings).exports.slots == slots


@pytest.mark.parametrize("service", ["receiving", "inventory", "fulfillment", "recall"])
@pytest.mark.parametrize(
    ("variable", "value", "said"),
    [
        ("HTTP_PORT", "99999", "less than or equal to 65535"),
        ("HTTP_PORT", "-1", "greater than or equal to 0"),
        ("OPS_HTTP_PORT", "0", "greater than or equal to 1"),
        ("OPS_HTTP_PORT", "70000", "less than or equal to 65535"),
    ],
)
def test_every_service_refuses_a_port_out_of_range(
    monkeypatch: pytest.MonkeyPatch, service: str, variable: str, value: str, said: str
) -> None:
    # Each service declares its ports itself: one typed as a bare int would lose the bounds.
    settings = importlib.import_module(f"services.{service}.app").Settings
    monkeypatch.setenv(f"{service.upper()}_{variable}", value)
    with pytest.raises(InvalidSettings) as refusal:
        load_settings(settings)
    assert str(refusal.value).startswith(f"{service.upper()}_{variable}")
    assert said in str(refusal.value)


def test_a_refused_url_is_not_echoed_with_its_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FULFILLMENT_DATABASE_URL", "mysql://app:s3cret@db/lottrace")
    with pytest.raises(InvalidSettings) as refusal:
        load_settings(Settings)
    assert "s3cret" not in str(refusal.value)


def test_two_refused_variables_make_two_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONSUMER_BATCH_TIMEOUT_MS", "0")
    monkeypatch.setenv("LOG_LEVEL", "LOUD")
    with pytest.raises(InvalidSettings) as refusal:
        load_settings(Settings)
    assert [line.split(":")[0] for line in str(refusal.value).splitlines()] == [
        "LOG_LEVEL",
        "CONSUMER_BATCH_TIMEOUT_MS",
    ]


def test_the_service_exits_2_with_the_refusal_and_no_traceback(tmp_path: Path) -> None:
    # From an empty folder: a developer's `.env` in the checkout must not add refusals.
    environment = {
        "PATH": os.environ["PATH"],
        "PYTHONPATH": str(ROOT),
        "FULFILLMENT_DATABASE_URL": "mysql://a:pw9@h/d",
    }
    finished = subprocess.run(
        [sys.executable, "-m", "services.fulfillment"],
        cwd=tmp_path,
        env=environment,
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert finished.returncode == 2
    assert finished.stderr.splitlines() == [
        "fulfillment cannot start: invalid settings",
        "FULFILLMENT_DATABASE_URL: Value error, must be a postgresql:// URL",
    ]
    assert "pw9" not in finished.stdout + finished.stderr
