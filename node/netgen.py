"""The network generator: keys, genesis and node configurations, written in one place.

Three tools make networks: ``tabellion network init`` (the operator's, cli/network.py),
``tabellion demo`` (which calls it) and the devnet of the tests and benchmarks
(node/devnet.py). They differ in layout and in where passphrases go; the rules that make
a network are here, once:

- Every municipality gets a fresh validator key and one member key per role of
  ``ledger.genesis.ROLES``, all enrolled in genesis.
- The genesis written must load again (``genesis_from_json``): it is checked before any
  file is written from it.
- A node's configuration lists every other validator as a peer; its key file is
  ``<directory>/validator.key``, its genesis ``<directory>/genesis.json`` unless told
  otherwise. ``node_config`` is the one builder (local, container and devnet alike).
- Key files are encrypted (``ledger.crypto.save_key``), each with its holder's
  passphrase (``KEY_HOLDERS``: the validator's operator and each member role).
- Free ports are taken below the OS's ephemeral range (``ip_local_port_range``), a run
  of consecutive ports from a random start, each checked free by binding it. Ports the
  OS hands out for ``bind(port 0)`` and for outgoing connections come from the
  ephemeral range, so between this choice and the node's own bind no client, peer link
  or proxy of the same machine can take one of them (a port freshly released by a
  bind-to-0 could be handed out again at once, and a node then failed to start).
"""

from __future__ import annotations

import random
import socket
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from consensus.messages import check_message_bounds
from ledger.crypto import SigningKey, save_key
from ledger.genesis import (
    ROLES,
    ConsensusParams,
    Genesis,
    Member,
    Municipality,
    genesis_from_json,
)
from ledger.siret import complete_siret
from node.config import Limits, NodeConfig, PeerConfig

PASSPHRASE_ENV_DEFAULT = "TABELLION_PASSPHRASE"
"""The environment variable a node reads its validator key's passphrase from, unless its
configuration names another."""
VALIDATOR_ROLE = "validator"
KEY_HOLDERS = (VALIDATOR_ROLE, *ROLES)
"""Every key of a municipality, each with its own passphrase."""
VALIDATOR_KEY_FILE = "validator.key"
GENESIS_FILE = "genesis.json"
CONFIG_FILE = "node.toml"
LOOPBACK = "127.0.0.1"


def generated_siret(index: int) -> str:
    """A valid (Luhn) but fictitious SIRET for the ``index``-th town of a generated
    network: tests, benchmarks and the devnet, never an operator's network."""
    return complete_siret(f"{21_930_000 + index:09d}{index:04d}")


EPHEMERAL_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
LOWEST_CHOSEN_PORT = 20_000
"""Below it are the well-known services an operator's machine may run (and 1024 needs root)."""
DEFAULT_EPHEMERAL_LOW = 32_768
"""Linux's default lower bound; used where the range cannot be read."""
FREE_PORT_ATTEMPTS = 64


def _ephemeral_low() -> int:
    try:
        low = int(EPHEMERAL_RANGE_FILE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return DEFAULT_EPHEMERAL_LOW
    return low if low > LOWEST_CHOSEN_PORT + 1024 else DEFAULT_EPHEMERAL_LOW


def free_ports(count: int, host: str = LOOPBACK) -> list[int]:
    """``count`` consecutive ports below the ephemeral range, all free on ``host`` now."""
    top = _ephemeral_low()
    if not 1 <= count <= top - LOWEST_CHOSEN_PORT:
        raise ValueError(f"cannot choose {count} free ports")
    chooser = random.SystemRandom()
    for _ in range(FREE_PORT_ATTEMPTS):
        start = chooser.randrange(LOWEST_CHOSEN_PORT, top - count + 1)
        ports = list(range(start, start + count))
        if all(_bindable(host, port) for port in ports):
            return ports
    raise OSError(f"found no {count} consecutive free ports on {host} between "
                  f"{LOWEST_CHOSEN_PORT} and {top}; free some ports or choose them yourself")


def _bindable(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


@dataclass(frozen=True, slots=True)
class MunicipalityKeys:
    """One municipality of a new network and the keys generated for it."""

    name: str
    siret: str
    validator: SigningKey
    members: dict[str, SigningKey]
    """Role -> the member key enrolled in genesis for that role."""

    def key_of(self, holder: str) -> SigningKey:
        """The key of ``holder`` (``VALIDATOR_ROLE`` or a member role)."""
        return self.validator if holder == VALIDATOR_ROLE else self.members[holder]


def new_keys(municipalities: Iterable[tuple[str, str]]) -> tuple[MunicipalityKeys, ...]:
    """Fresh keys for each ``(name, siret)``: a validator and one member per role."""
    return tuple(MunicipalityKeys(name, siret, SigningKey.generate(),
                                  {role: SigningKey.generate() for role in ROLES})
                 for name, siret in municipalities)


def genesis_of(chain_id: str, municipalities: Sequence[MunicipalityKeys], *,
               consensus: ConsensusParams | None = None,
               genesis_time_ms: int | None = None) -> Genesis:
    """The genesis enrolling every validator and member; checked to load again."""
    genesis = Genesis(
        chain_id,
        int(time.time() * 1000) if genesis_time_ms is None else genesis_time_ms,
        tuple(Municipality(m.name, m.siret, m.validator.public_key,
                           tuple(Member(m.members[role].public_key, role) for role in ROLES))
              for m in municipalities),
        consensus or ConsensusParams(),
    )
    genesis_from_json(genesis.to_json())  # the file we write must load: check it now
    check_message_bounds(genesis.validator_set.n, genesis.consensus.watermark_window)
    return genesis


def save_keys(directory: Path, keys: MunicipalityKeys, passphrases: Mapping[str, bytes]
              ) -> None:
    """Write ``<holder>.key`` in ``directory`` for each holder in ``passphrases``,
    encrypted with that holder's passphrase."""
    for holder, passphrase in passphrases.items():
        save_key(keys.key_of(holder), directory / f"{holder}.key", passphrase)


def node_config(
    directory: Path,
    *,
    passphrase_env: str,
    data_dir: Path,
    listen_host: str,
    api_port: int,
    peer_port: int,
    peers: Iterable[tuple[bytes, str]],
    genesis_file: Path | None = None,
    limits: Limits | None = None,
    log_level: str = "info",
) -> NodeConfig:
    """The configuration of the validator whose files are in ``directory``; ``peers``
    are the other validators as ``(public key, "host:port")``."""
    return NodeConfig(
        data_dir=data_dir,
        key_file=directory / VALIDATOR_KEY_FILE,
        passphrase_env=passphrase_env,
        genesis_file=directory / GENESIS_FILE if genesis_file is None else genesis_file,
        listen_peer=f"{listen_host}:{peer_port}",
        listen_api=f"{listen_host}:{api_port}",
        peers=tuple(PeerConfig(key, address) for key, address in peers),
        limits=limits or Limits(),
        log_level=log_level,
    )
