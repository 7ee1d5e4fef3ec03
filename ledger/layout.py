"""The key layout of a node's data directory: the one place that names its key spaces.

Rules:
- A data directory is ONE LevelDB. Every key starts with one of the prefixes below, and
  each space has one owner that writes it:

  ==============  ==========================================  ===========================
  prefix          what                                        owner (writer)
  ==============  ==========================================  ===========================
  ``c/``          blocks, certificates, receipts, tx indexes  ``ledger.store``
  ``s/n/``        state-tree nodes and the latest-version     ``ledger.state_store``
                  marker
  ``s/i/``        flat index of the latest state values       ``ledger.state_store``
  ``p/``          the replica's working records (votes,       ``node.runtime`` for
                  prepared and committed blocks, view)        ``consensus.persist``
  ``m/genesis``   genesis hash the directory was created for  ``node.chain``
  ``m/vhist``     derived cache of validator-set decisions    ``node.chain``
  ==============  ==========================================  ===========================

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
CONSENSUS_PREFIX = b"p/"
"""The replica's persisted records (keys of ``consensus.persist``)."""
META_PREFIX = b"m/"
"""Single-key records about the directory itself."""
GENESIS_MARK = META_PREFIX + b"genesis"
"""The genesis hash (32 bytes) the directory was created for."""
HISTORY_MARK = META_PREFIX + b"vhist"
"""Canonical ``[up_to_height, decisions]``: the validator-set decisions found in the state
up to a height (``ledger.validator_history.ValidatorHistory.decisions_value``)."""

PREFIXES = (CHAIN_PREFIX, STATE_PREFIX, CONSENSUS_PREFIX, META_PREFIX)
"""Every key space of a data directory, in key order."""
META_KEYS = (GENESIS_MARK, HISTORY_MARK)
"""Every key allowed under ``META_PREFIX``."""
