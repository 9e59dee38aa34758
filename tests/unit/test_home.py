"""The data folder of `make run`: its format record, lock, admin key and reset."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from lottrace.home import (
    DataFormat,
    DataHome,
    HomeError,
    HomeLock,
    format_problem,
)

CURRENT = DataFormat(data_format=1, postgres_major=18)


def test_the_same_or_an_older_format_opens() -> None:
    assert format_problem(CURRENT, CURRENT) is None
    assert format_problem(DataFormat(0, 18), CURRENT) is None


def test_a_newer_format_or_another_postgres_major_is_refused() -> None:
    assert "newer lottrace" in (format_problem(DataFormat(2, 18), CURRENT) or "")
    assert "PostgreSQL 18" in (format_problem(DataFormat(1, 17), CURRENT) or "")


def test_a_folder_from_a_newer_version_is_refused_and_left_as_it_is(tmp_path: Path) -> None:
    home = DataHome(tmp_path)
    home.write_format(DataFormat(data_format=99, postgres_major=18))
    before = home.format_file.read_text()
    with pytest.raises(HomeError, match=f"{tmp_path}.*newer lottrace"):
        home.check_format(CURRENT)
    assert home.format_file.read_text() == before


def test_a_new_folder_records_its_format(tmp_path: Path) -> None:
    home = DataHome(tmp_path)
    home.check_format(CURRENT)
    assert DataFormat.parse(home.format_file.read_text()) == CURRENT


def test_a_second_lock_on_the_folder_is_refused_naming_the_holder(tmp_path: Path) -> None:
    first = HomeLock(tmp_path)
    first.acquire()
    try:
        with pytest.raises(HomeError, match=f"PID {os.getpid()}"):
            HomeLock(tmp_path).acquire()
    finally:
        first.release()
    again = HomeLock(tmp_path)
    again.acquire()  # free once released
    again.release()


def test_the_admin_key_is_kept_owner_only_and_stable(tmp_path: Path) -> None:
    key = DataHome(tmp_path).admin_key()
    assert DataHome(tmp_path).admin_key() == key
    assert stat.S_IMODE((tmp_path / "admin-key").stat().st_mode) == 0o600


def test_reset_deletes_the_data_and_a_new_key_is_made(tmp_path: Path) -> None:
    home = DataHome(tmp_path)
    key = home.admin_key()
    home.check_format(CURRENT)
    (home.postgres_dir / "data").mkdir(parents=True)
    home.reset()
    assert not home.postgres_dir.exists()
    assert not home.format_file.exists()
    assert home.admin_key() != key
