"""The contracts replayed from genesis, and a node's stored state judged against them.

Rules:
- ``EngineReplayer`` executes blocks with ``contracts.engine`` on a fresh state, exactly as
  a node does, and reports the receipts, the state root and any validator set decided.
- ``ComparingNodeStore`` is the replay's node store over a node's stored state: every node
  the replay writes at version ``v`` must be stored byte for byte under the same key, and
  the stored nodes of version ``v`` must be exactly those (the tree layout is
  deterministic). Stored nodes are read through ``ledger.state``'s own decoder
  (``stored_leaf_key``), never at offsets known outside it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Protocol

from contracts.engine import (
    BlockEnv,
    CommittedBefore,
    DictState,
    RecentCommits,
    execute_block,
    genesis_changes,
)
from contracts.identity import active_municipalities
from ledger.genesis import Genesis
from ledger.records import BlockHeader, Transaction
from ledger.state import (
    LATEST_VERSION_KEY,
    MemoryNodeStore,
    NodeStore,
    StateTree,
    stored_leaf_key,
    version_key_prefix,
)
from verify.chain import Execution
from verify.findings import Finding

NODE_FINDINGS_PER_VERSION_MAX = 16
"""Differing state nodes reported for one height; the rest are counted in one line."""


class EngineReplayer:
    """Replays the contracts (``contracts.engine``) from genesis into a state tree.

    ``nodes`` receives the tree's nodes: a ``MemoryNodeStore`` by default, or a store
    that compares every node with a node's stored state (``--data``)."""

    def __init__(self, genesis: Genesis, nodes: NodeStore | None = None, *,
                 start: tuple[int, Mapping[bytes, bytes]] | None = None,
                 committed_up_to_start: CommittedBefore | None = None) -> None:
        """``start``: resume after block ``version`` from that version's state (its
        items; its tree nodes are those ``nodes`` already holds); ``genesis_root`` is
        then the root of that version, to be judged against the certified header.
        ``committed_up_to_start`` then says which ids blocks up to ``version`` hold (the
        replay guard, ``contracts.engine``): a replay that did not see those blocks cannot
        know them. A wrong answer changes receipts, which the certified headers judge."""
        self._chain_id = genesis.chain_id
        self._recent = RecentCommits()
        earlier = committed_up_to_start
        self._committed: CommittedBefore = (
            self._recent if earlier is None
            else lambda tx_id: self._recent(tx_id) or earlier(tx_id))
        self._state = DictState()
        self._tree = StateTree(nodes if nodes is not None else MemoryNodeStore())
        if start is None:
            changes: Mapping[bytes, bytes | None] = genesis_changes(genesis)
            self._state.apply(changes)
            self._genesis_root = self._tree.apply(0, changes)
            version = 0
        else:
            version, items = start
            self._state.apply(dict(items))
            self._genesis_root = self._tree.root(version)
            changes = items
        self.last_written: dict[bytes, int] = dict.fromkeys(changes, version)
        """Height of the block that last wrote each state key (0: genesis)."""

    def genesis_root(self) -> bytes:
        return self._genesis_root

    def execute(self, header: BlockHeader, txs: Sequence[Transaction]) -> Execution:
        env = BlockEnv(self._chain_id, header.height, header.time_ms, header.proposer)
        result = execute_block(self._state, env, txs, self._committed)
        self._recent.record(header.time_ms, txs)
        self._state.apply(result.changes)
        root = self._tree.apply(header.height, result.changes)
        self.last_written.update(dict.fromkeys(result.changes, header.height))
        return Execution(result.receipts, root, result.validator_set)

    def municipalities(self) -> int:
        return len(active_municipalities(self._state))

    def state_items(self) -> dict[bytes, bytes]:
        """The replayed state after the last block executed, key by key."""
        return self._state.items()


class StoredNodes(Protocol):
    """Read access to a node's stored state-tree nodes (``ledger.kv.KV`` fits)."""

    def get(self, key: bytes) -> bytes | None: ...

    def items(self, *, prefix: bytes | None = None) -> Iterator[tuple[bytes, bytes]]: ...


def _leaf_key(data: bytes | None) -> str | None:
    """The state key held by a stored leaf node, in words (``None`` if not a leaf)."""
    key = stored_leaf_key(data)
    return None if key is None else key.decode("ascii", errors="replace")


class ComparingNodeStore:
    """The replay's node store over a node's stored state.

    Every node the replay writes at version ``v`` is compared with the node stored under
    the same key, and the stored nodes of version ``v`` must be exactly those: the tree
    layout is deterministic, so any difference is a finding at height ``v``. Reads come
    from the stored nodes (verified when their version was replayed) except where they
    differ, so memory stays small whatever the length of the chain."""

    def __init__(self, stored: StoredNodes, *, from_version: int | None = None) -> None:
        """``from_version``: the replay resumes after that version (its nodes are read
        from the stored state, judged by the root the chain certifies)."""
        self._stored = stored
        self._own: dict[bytes, bytes] = {}
        if from_version is not None:
            self._own[LATEST_VERSION_KEY] = from_version.to_bytes(8, "big")
        self.findings: list[Finding] = []

    def get_node(self, node_key: bytes) -> bytes | None:
        own = self._own.get(node_key)
        if own is not None or node_key == LATEST_VERSION_KEY:
            return own  # the replay's progress, never the node's
        return self._stored.get(node_key)

    def write_nodes(self, nodes: Mapping[bytes, bytes], *, version: int) -> None:
        problems: list[str] = []
        for node_key in sorted(nodes):
            data = nodes[node_key]
            if node_key == LATEST_VERSION_KEY:
                self._own[node_key] = data
                continue
            stored = self._stored.get(node_key)
            if stored == data:
                continue
            self._own[node_key] = data
            what = _leaf_key(data) or _leaf_key(stored)
            subject = f"the value of state key {what!r}" if what else (
                f"state node {node_key.hex()}")
            problems.append(f"{subject} is missing from the stored state" if stored is None
                            else f"{subject} is stored with bytes that differ from replay")
        for node_key, stored in self._stored.items(prefix=version_key_prefix(version)):
            if node_key not in nodes:
                what = _leaf_key(stored)
                problems.append(
                    f"the stored state holds an extra node {node_key.hex()}"
                    + (f" (state key {what!r})" if what else "") + " that replay never wrote")
        for problem in problems[:NODE_FINDINGS_PER_VERSION_MAX]:
            self.findings.append(Finding(version, "state", problem))
        if len(problems) > NODE_FINDINGS_PER_VERSION_MAX:
            self.findings.append(Finding(
                version, "state", f"... and {len(problems) - NODE_FINDINGS_PER_VERSION_MAX} "
                "more differing state nodes at this height"))


