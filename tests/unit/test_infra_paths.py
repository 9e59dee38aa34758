"""Pure parts of the embedded infrastructure: whether PostgreSQL's run user can reach a
folder, and the one line of a failed start worth telling the user."""

from __future__ import annotations

import pwd
import shutil
import tempfile
from pathlib import Path

from lottrace.infra import diagnosis, log_end, reachable_by

NOBODY = pwd.getpwnam("nobody")


def test_a_folder_below_a_0700_parent_is_out_of_reach() -> None:
    # Not pytest's tmp_path: as root it sits below /tmp/pytest-of-root, itself 0700.
    base = Path(tempfile.mkdtemp(prefix="lottrace-reach-"))
    try:
        base.chmod(0o755)
        private = base / "private"
        private.mkdir()
        private.chmod(0o700)
        (base / "open").mkdir()
        (base / "open").chmod(0o755)
        assert not reachable_by(private / "checkout" / ".lottrace", NOBODY)
        assert reachable_by(base / "open" / "checkout" / ".lottrace", NOBODY)
        assert reachable_by(private, NOBODY)  # the folder itself is chowned, not traversed
    finally:
        shutil.rmtree(base)


def test_a_full_disk_is_said_plainly() -> None:
    output = 'initdb: error: could not write file "base/1/1259": No space left on device'
    assert diagnosis(output) == "the disk is full (no space left on device)"


def test_the_failing_line_of_a_postgres_log_is_picked() -> None:
    log = "LOG:  starting PostgreSQL 18.6\nFATAL:  could not bind IPv4 address\nLOG:  exit"
    assert diagnosis(log) == "FATAL:  could not bind IPv4 address"


def test_the_end_of_a_log_starts_at_this_runs_lines_and_is_bounded(tmp_path: Path) -> None:
    log = tmp_path / "service.log"
    log.write_bytes(b"an earlier run's line\n")
    this_run = log.stat().st_size
    with log.open("ab") as more:
        more.write(b"x" * 100 + b"\nthe line that says why\n")
    assert log_end(log, since=this_run).splitlines()[-1] == "the line that says why"
    assert "earlier run" not in log_end(log, since=this_run)
    assert log_end(log, max_bytes=9) == "says why\n"


def test_a_log_that_cannot_be_read_is_said_so_instead_of_raising(tmp_path: Path) -> None:
    missing = tmp_path / "gone.log"
    assert log_end(missing).startswith(f"(its log {missing} cannot be read:")
