"""Deterministic PBFT simulator (see tests/sim/core.py)."""
