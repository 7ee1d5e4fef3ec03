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
- ``joiner`` adds a validator that is NOT in genesis (to be added by governance): its
  key, its directory and a configuration listing the genesis validators as peers; the
  genesis validators' configurations do not list it (they learn its address on chain).
- Keys, genesis and configurations come from node/netgen.py, the one generator that
  ``tabellion network init`` uses too; this module only chooses the layout.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from ledger.crypto import SigningKey
from ledger.genesis import ConsensusParams, Genesis
from node.config import Limits, NodeConfig, write_config
from node.netgen import (
    CONFIG_FILE,
    LOOPBACK,
    PASSPHRASE_ENV_DEFAULT,
    VALIDATOR_ROLE,
    free_ports,
    generated_siret,
    genesis_of,
    new_keys,
    node_config,
    save_keys,
)

TOWNS = ("Montreuil", "Bagnolet", "Vincennes", "Romainville", "Pantin", "Lilas", "Bondy")
"""Names for up to seven validators (their SIRETs are generated, valid but fictitious)."""
DEFAULT_SIZE = 4


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
        """Environment for a node process (the passphrase under
        ``PASSPHRASE_ENV_DEFAULT``)."""
        return {**os.environ, PASSPHRASE_ENV_DEFAULT: self.passphrase}


def generate(
    root: Path,
    names: tuple[str, ...] = TOWNS[:DEFAULT_SIZE],
    *,
    chain_id: str | None = None,
    consensus: ConsensusParams | None = None,
    limits: Limits | None = None,
    log_level: str = "info",
) -> DevNet:
    """Write genesis, keys and configurations for ``len(names)`` validators under ``root``
    (node/netgen.py makes them; this layout: ``root/genesis.json``, ``root/node<i>/``)."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    passphrase = os.urandom(12).hex()
    sirets = [generated_siret(i) for i in range(len(names))]
    keys = new_keys(zip(names, sirets, strict=True))
    genesis = genesis_of(chain_id or f"devnet-{os.urandom(4).hex()}", keys,
                         consensus=consensus,
                         genesis_time_ms=int(time.time() * 1000) - 1000)
    genesis_path = root / "genesis.json"
    genesis.save(genesis_path)
    ports = free_ports(2 * len(names))
    peer_ports, api_ports = ports[:len(names)], ports[len(names):]
    nodes = []
    for i, k in enumerate(keys):
        directory = root / f"node{i}"
        directory.mkdir(parents=True, exist_ok=True)
        save_keys(directory, k, {VALIDATOR_ROLE: passphrase.encode()})
        config = node_config(
            directory, passphrase_env=PASSPHRASE_ENV_DEFAULT, data_dir=directory / "data",
            listen_host=LOOPBACK, api_port=api_ports[i], peer_port=peer_ports[i],
            peers=[(o.validator.public_key, f"{LOOPBACK}:{peer_ports[j]}")
                   for j, o in enumerate(keys) if j != i],
            genesis_file=genesis_path, limits=limits, log_level=log_level,
        )
        config_path = directory / CONFIG_FILE
        write_config(config_path, config)
        nodes.append(DevNode(k.name, k.siret, directory, config_path, config, k.validator,
                             k.members))
    return DevNet(root, genesis, genesis_path, tuple(nodes), passphrase)


def joiner(net: DevNet, name: str, *, limits: Limits | None = None,
           log_level: str = "info") -> DevNet:
    """``net`` with one more node, ``name``, whose municipality is not in genesis: the
    last of ``nodes``, with a fresh validator key and member keys (to enrol through
    governance), the same genesis and passphrase, and the genesis validators as peers."""
    index = len(net.nodes)
    (k,) = new_keys([(name, generated_siret(index))])
    directory = net.root / f"node{index}"
    directory.mkdir(parents=True, exist_ok=True)
    save_keys(directory, k, {VALIDATOR_ROLE: net.passphrase.encode()})
    peer_port, api_port = free_ports(2)
    config = node_config(
        directory, passphrase_env=PASSPHRASE_ENV_DEFAULT, data_dir=directory / "data",
        listen_host=LOOPBACK, api_port=api_port, peer_port=peer_port,
        peers=[(n.validator_key.public_key, n.config.listen_peer) for n in net.nodes],
        genesis_file=net.genesis_path, limits=limits, log_level=log_level,
    )
    config_path = directory / CONFIG_FILE
    write_config(config_path, config)
    node = DevNode(k.name, k.siret, directory, config_path, config, k.validator, k.members)
    return replace(net, nodes=(*net.nodes, node))
