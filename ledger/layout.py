"""The key layout of a node's data directory: the one place that names its key spaces.

Rules:
- A data directory is one key space. Every key starts with one of the prefixes below,
  and each space has one owner that writes it:

  ==============  ==========================================  ===========================
  prefix          what                                        owner (writer)
  ==============  ==========================================  ===========================
  ``c/``          blocks, certificates, receipts, tx indexes  ``ledger.store``
  ``s/n/``        state-tree nodes                            ``ledger.state_store``
  ``s/latest``    the latest version applied (state marker)   ``ledger.state_store``
  ``s/i/``        flat index of the latest state values       ``ledger.state_store``
  ``p/``          the replica's working records (votes,       ``node.runtime`` for
                  prepared and committed blocks, view)        ``consensus.persist``
  ``m/genesis``   genesis hash the directory was created for  ``node.chain``
  ``m/vhist``     derived cache of validator-set decisions    ``node.chain``
  ==============  ==========================================  ===========================

- Three LevelDBs hold these spaces (``ledger.kv``'s routes, ``STORES``): the tree nodes
  (``s/n/`` but for the version marker, which is ``s/latest``) in the subdirectory
  ``tree``, the replica's records (``p/``) in ``consensus``, every other space in the
  data directory itself. The tree's keys grow with the version and the replica's records
  are deleted within a checkpoint interval: apart from the keys written in random order
  (transaction index, latest-value index) their compactions are almost free. A write of
  a block's state goes to ``tree`` first, then to the main LevelDB with the marker, so
  a crash between the two leaves nodes above the marker, which re-executing the block
  writes again byte for byte (docs/adr/0004-store-layout.md).
- Nothing else is ever written. A reader that must account for every stored value (the
  audit, ``verify``) treats a key outside these spaces as a finding.
- This module holds names only (no I/O), so every layer may import it.
"""

from __future__ import annotations

CHAIN_PREFIX = b"c/"
"""Committed blocks and their indexes (ADR 0004; layout in ``ledger.store``)."""
STATE_PREFIX = b"s/"
"""The authenticated state (``ledger.state_store.PersistentState`` over this space)."""
STATE_NODES_PREFIX = b"n/"
"""Inside ``STATE_PREFIX``: the tree nodes, keyed by ``ledger.state.node_key``."""
STATE_INDEX_PREFIX = b"i/"
"""Inside ``STATE_PREFIX``: the value of each state key in the latest version."""
STATE_VERSION_MARK = b"latest"
"""Inside ``STATE_PREFIX``: the latest version applied (8 bytes, big-endian), the state's
commit point, in the main LevelDB. Written under ``STATE_NODES_PREFIX`` before the tree's
nodes had a LevelDB of their own; ``ledger.state_store`` moves it on opening."""
CONSENSUS_PREFIX = b"p/"
"""The replica's persisted records (keys of ``consensus.persist``)."""
META_PREFIX = b"m/"
"""Single-key records about the directory itself."""
GENESIS_MARK = META_PREFIX + b"genesis"
"""The genesis hash (32 bytes) the directory was created for."""
HISTORY_MARK = META_PREFIX + b"vhist"
"""Canonical ``[up_to_height, decisions]``: the validator-set decisions found in the state
up to a height (``ledger.validator_history.ValidatorHistory.decisions_value``)."""

STORES = ((STATE_PREFIX + STATE_NODES_PREFIX, "tree"), (CONSENSUS_PREFIX, "consensus"))
"""Key spaces kept in a LevelDB of their own: (prefix, subdirectory of the data
directory), in the order a write that spans them reaches the disk (the main LevelDB
last; ``ledger.kv``)."""

PREFIXES = (CHAIN_PREFIX, STATE_PREFIX, CONSENSUS_PREFIX, META_PREFIX)
"""Every key space of a data directory, in key order."""
META_KEYS = (GENESIS_MARK, HISTORY_MARK)
"""Every key allowed under ``META_PREFIX``."""
