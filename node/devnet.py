"""A local network on 127.0.0.1 for tests, benchmarks and demonstrations.

Rules:
- Everything is fresh: new keys, a new chain id, ports the OS hands out (bind to port
  0, read it, release it), one directory per node under the given root.
- Validator keys are written encrypted (``ledger.crypto.save_key``); the passphrase is
  returned and must reach each node through the environment variable its configuration
  names, exactly as an operator would provide it.
- Member keys (admin, clerk, social-aid agent, auditor per municipality) are enrolled in
  genesis and returned in memory: the test or benchmark signs with them directly.
  (``tabellion network init`` is the operator's tool and writes them to key files.)
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

from ledger.crypto import SigningKey, save_key
from ledger.genesis import ROLES, ConsensusParams, Genesis, Member, Municipality
from ledger.siret import complete_siret
from node.config import Limits, NodeConfig, PeerConfig, write_config

PASSPHRASE_ENV = "TABELLION_PASSPHRASE"


def free_port(host: str = "127.0.0.1") -> int:
    """A port the OS just handed out (bind to 0, read it, release it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


@dataclass(frozen=True, slots=True)
class DevNode:
    """One generated validator."""

    name: str
    siret: str
    directory: Path
    config_path: Path
    config: NodeConfig
    validator_key: SigningKey
    members: dict[str, SigningKey] = field(default_factory=dict)
    """Role -> key enrolled for this municipality in genesis."""

    @property
    def api_url(self) -> str:
        return f"http://{self.config.listen_api}"


@dataclass(frozen=True, slots=True)
class DevNet:
    """A generated network: genesis, nodes and the passphrase of their key files."""

    root: Path
    genesis: Genesis
    genesis_path: Path
    nodes: tuple[DevNode, ...]
    passphrase: str

    def env(self) -> dict[str, str]:
        """Environment for a node process (the passphrase under ``PASSPHRASE_ENV``)."""
        return {**os.environ, PASSPHRASE_ENV: self.passphrase}


def generate(
    root: Path,
    names: tuple[str, ...] = ("Montreuil", "Bagnolet", "Vincennes", "Romainville"),
    *,
    chain_id: str | None = None,
    consensus: ConsensusParams | None = None,
    limits: Limits | None = None,
    log_level: str = "info",
) -> DevNet:
    """Write genesis, keys and configurations for ``len(names)`` validators under ``root``."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    passphrase = os.urandom(12).hex()
    chain_id = chain_id or f"devnet-{os.urandom(4).hex()}"
    validators = [SigningKey.generate() for _ in names]
    members = [{role: SigningKey.generate() for role in ROLES} for _ in names]
    sirets = [complete_siret(f"{21_930_000 + i:09d}{i:04d}") for i in range(len(names))]
    genesis = Genesis(
        chain_id=chain_id,
        genesis_time_ms=int(time.time() * 1000) - 1000,
        municipalities=tuple(
            Municipality(name, siret, v.public_key,
                         tuple(Member(k.public_key, role) for role, k in m.items()))
            for name, siret, v, m in zip(names, sirets, validators, members, strict=True)
        ),
        consensus=consensus or ConsensusParams(),
    )
    genesis_path = root / "genesis.json"
    genesis.save(genesis_path)
    peer_ports = [free_port() for _ in names]
    api_ports = [free_port() for _ in names]
    peers = tuple(PeerConfig(v.public_key, f"127.0.0.1:{p}")
                  for v, p in zip(validators, peer_ports, strict=True))
    nodes = []
    for i, name in enumerate(names):
        directory = root / f"node{i}"
        directory.mkdir(parents=True, exist_ok=True)
        save_key(validators[i], directory / "validator.key", passphrase.encode())
        config = NodeConfig(
            data_dir=directory / "data",
            key_file=directory / "validator.key",
            passphrase_env=PASSPHRASE_ENV,
            genesis_file=genesis_path,
            listen_peer=f"127.0.0.1:{peer_ports[i]}",
            listen_api=f"127.0.0.1:{api_ports[i]}",
            peers=tuple(p for j, p in enumerate(peers) if j != i),
            limits=limits or Limits(),
            log_level=log_level,
        )
        config_path = directory / "node.toml"
        write_config(config_path, config)
        nodes.append(DevNode(name, sirets[i], directory, config_path, config, validators[i],
                             members[i]))
    return DevNet(root, genesis, genesis_path, tuple(nodes), passphrase)
