"""The test kit: what the tests and the benchmarks share (bench/ never imports tests/).

Rules:
- Only helpers that build inputs or wait for conditions live here: the one chain builder
  and the test keys (``chainbuilder``: executed chains with state and validator-set
  changes, or ledger-only chains for the store), what a test chain holds (``populate``),
  the deterministic PBFT simulator (``sim``) and ``wait``. Test modules and their
  assertions stay in tests/.
- It may import every package of the project except cli/ and tests/ (see
  tests/test_architecture.py); nothing in production code imports it.
"""
