"""Deterministic PBFT simulator (see testkit/sim/core.py)."""
