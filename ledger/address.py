"""Validators' network addresses (``host:port``): one rule for configuration files and
for the addresses governance writes on chain.

Rules:
- An address is ``host:port``. The host is a DNS name or an IPv4 address (ASCII letters,
  digits, dots and hyphens, at most ``HOST_BYTES_MAX``) or an IPv6 literal in brackets;
  the port is decimal, 0..65535 (0 only where the OS may choose: a listen address).
- A peer address (one another validator dials: on chain, in a peers list) names a port
  from 1, and is at most ``PEER_ADDRESS_BYTES_MAX`` bytes: a bounded value every
  validator keeps in its state.
- Nothing is resolved here (no DNS at validation time: a contract is deterministic).
"""

from __future__ import annotations

import re

HOST_BYTES_MAX = 253
"""Longest DNS name (RFC 1035)."""
PEER_ADDRESS_BYTES_MAX = HOST_BYTES_MAX + len(":65535")
"""Longest peer address: the longest host name, a colon and a five-digit port."""
PORT_MAX = 65535
ADDRESS_HINT = 'host:port, e.g. "192.0.2.10:7001" or "validator.example.fr:7001"'
PEER_ADDRESS_RE = re.compile(
    r"(?P<host>[A-Za-z0-9.\-]{1,253}|\[[0-9A-Fa-f:.]{2,45}\]):(?P<port>[0-9]{1,5})", re.ASCII)
"""The shape of ``host:port`` (the port's range is checked by ``split_host_port``)."""


def split_host_port(text: str) -> tuple[str, int]:
    """``"127.0.0.1:7001"`` -> ``("127.0.0.1", 7001)``; raise ``ValueError`` otherwise."""
    match = PEER_ADDRESS_RE.fullmatch(text)
    if match is None:
        raise ValueError(f"{text[:80]!r} is not {ADDRESS_HINT}")
    port = int(match.group("port"))
    if not 0 <= port <= PORT_MAX:
        raise ValueError(f"port {port} is out of range (0..{PORT_MAX})")
    return match.group("host").strip("[]"), port


def peer_address_problem(text: str) -> str | None:
    """What is wrong with ``text`` as an address other validators dial, or ``None``."""
    if len(text.encode("utf-8")) > PEER_ADDRESS_BYTES_MAX:
        return f"a peer address is at most {PEER_ADDRESS_BYTES_MAX} bytes"
    try:
        _, port = split_host_port(text)
    except ValueError as exc:
        return str(exc)
    if port == 0:
        return "a peer address names its port (1..65535), not 0"
    return None
