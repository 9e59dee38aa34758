"""Ports handed to the test platforms' servers: no other process may take one between the
choice and the server binding it, seconds later."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

from lottrace.infra import free_port

EPHEMERAL_LOW = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])


def test_ports_lie_below_the_range_outgoing_connections_take_theirs_from() -> None:
    ports = {free_port() for _ in range(20)}
    assert len(ports) == 20
    assert all(1024 < port < EPHEMERAL_LOW for port in ports)


def test_another_process_never_gets_a_port_this_one_holds() -> None:
    held = [free_port() for _ in range(50)]
    script = "from lottrace.infra import free_port\nprint(*(free_port() for _ in range(400)))"
    root = Path(__file__).resolve().parents[2]
    output = subprocess.run(
        [sys.executable, "-c", script], cwd=root, capture_output=True, text=True, check=True
    ).stdout
    assert not set(held) & {int(port) for port in output.split()}


def test_a_held_port_can_still_be_bound_by_the_server_it_is_for() -> None:
    port = free_port()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", port))
        server.listen()
