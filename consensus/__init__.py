"""PBFT consensus as a sans-IO state machine: ``step(event) -> effects``.

Rules: no asyncio, sockets, plyvel, wall clock or randomness here; time arrives as an event
argument; persistence and sending leave as effects. Never imports ``contracts`` or ``node``.
"""
