"""Deterministic rules for each record type: ``validate`` and ``apply`` over a state view.

Rules: no I/O, no floats, no clock, no randomness, no iteration over unordered containers
where the order reaches the state. Imports only ``ledger``.
"""
