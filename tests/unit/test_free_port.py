"""Ports handed to the test platforms' servers: no other process may take one between the
choice and the server binding it, seconds later."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from lottrace.infra import free_port

RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
pytestmark = pytest.mark.skipif(not RANGE.exists(), reason="Linux's reservation only")
EPHEMERAL_LOW = int(RANGE.read_text().split()[0]) if RANGE.exists() else 0


def test_ports_lie_below_the_range_outgoing_connections_take_theirs_from() -> None:
    ports = {free_port() for _ in range(20)}
    assert len(ports) == 20
    assert all(1024 < port < EPHEMERAL_LOW for port in ports)


def test_another_process_never_gets_a_port_this_one_holds() -> None:
    held = [free_port() for _ in range(50)]
    # The other process tries to reserve exactly these ports, as its free_port() would.
    script = (
        "import sys\nfrom lottrace.infra import _reserve\n"
        "print(*(_reserve(int(port)) for port in sys.argv[1:]))"
    )
    root = Path(__file__).resolve().parents[2]
    output = subprocess.run(
        [sys.executable, "-c", script, *map(str, held)],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert output.split() == ["False"] * len(held)


def test_a_held_port_can_still_be_bound_by_the_server_it_is_for() -> None:
    port = free_port()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", port))
        server.listen()
