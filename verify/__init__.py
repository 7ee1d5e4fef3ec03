"""Verification as a library: what makes a chain, a data directory and a receipt valid.

The node, the command line, a library user and (by its specification, docs/receipt.md) the
browser verifier all follow the rules written here, and nowhere else:

- ``verify.findings``: what a check reports (``Finding``, ``AuditReport``).
- ``verify.chain``: ``ChainAudit``, the pure chain checker (links, Merkle roots,
  certificates against the validator history, receipts, replay results).
- ``verify.signatures``: transaction signatures verified on every core.
- ``verify.replay``: the contracts replayed from genesis, and the comparison of a node's
  stored state with the replay, node by node.
- ``verify.sources``: where blocks come from (a private copy of a data directory, a
  node's API), decoded with damage located.
- ``verify.stored``: every other stored value of a data directory (the replica's working
  records, the ``m/`` marks), checked or counted as unverifiable.
- ``verify.audit``: the audit levels, the saved audit point, the report.
- ``verify.receipt``: portable receipts (docs/receipt.md), built and checked.

Dependencies: ``ledger`` and ``contracts`` only (tests/test_architecture.py). The formats of
the replica's records belong to ``consensus``: their checker is handed in by the caller
(``verify.stored.ConsensusRecordChecker``), and without one those records are reported as
unverifiable, never as intact.
"""
