"""Tabellion ledger: the data of the chain and nothing else.

Rules of this package:
- It imports none of ``consensus``, ``contracts``, ``node`` or ``cli``.
- Every function is pure except those in :mod:`ledger.store` and :mod:`ledger.state_store`,
  the only modules that touch disk (``plyvel``).
- Everything hashed or signed goes through :mod:`ledger.encoding` and :mod:`ledger.hashing`.
"""
