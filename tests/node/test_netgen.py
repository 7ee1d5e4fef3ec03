"""The network generator's port choice: free ports outside the OS's ephemeral range."""

from __future__ import annotations

import socket

import pytest

from node import netgen
from node.netgen import free_ports


def test_free_ports_are_consecutive_free_and_below_the_ephemeral_range() -> None:
    ports = free_ports(8)
    assert ports == list(range(ports[0], ports[0] + 8))
    assert ports[0] >= netgen.LOWEST_CHOSEN_PORT and ports[-1] < netgen._ephemeral_low()
    held = []
    try:
        for port in ports:  # every one can be bound now, as a node's listeners bind
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            held.append(s)
            # asyncio's servers and uvicorn set SO_REUSEADDR: a port whose last connection
            # is in TIME_WAIT (another test's server just closed) is free for them.
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", port))
    finally:
        for s in held:
            s.close()


def test_a_port_with_a_listener_is_never_chosen(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", free_ports(3)[1]))
        listener.listen()
        port = int(listener.getsockname()[1])
        # Three candidate ports, the middle one taken: it must never come back.
        monkeypatch.setattr(netgen, "LOWEST_CHOSEN_PORT", port - 1)
        monkeypatch.setattr(netgen, "_ephemeral_low", lambda: port + 2)
        chosen = {free_ports(1)[0] for _ in range(40)}
        assert port not in chosen and chosen <= {port - 1, port + 1}
