"""The audit's signature path (``ledger.crypto.invalid_signatures``) judges every signature
exactly as ``ledger.crypto.verify`` does: it is only faster, never more lenient."""

from __future__ import annotations

import os

from ledger import crypto


def _signed(count: int) -> list[tuple[bytes, bytes, bytes]]:
    keys = [crypto.SigningKey.generate() for _ in range(3)]
    out = []
    for i in range(count):
        key, message = keys[i % 3], os.urandom(40 + i)
        out.append((key.public_key, message, key.sign(message)))
    return out


def test_it_names_exactly_the_signatures_verify_refuses() -> None:
    items = _signed(12)
    key, message, signature = items[1]
    other_key = items[4][0]  # keys[1]; item 5 is signed with keys[2]
    flipped = bytes([signature[0] ^ 1]) + signature[1:]
    # S >= L (not canonical): libsodium refuses it, and so must the fast path
    order = 2**252 + 27742317777372353535851937790883648493
    s_plus_l = (int.from_bytes(signature[32:], "little") + order).to_bytes(32, "little")
    items[1] = (key, message + b"!", signature)          # altered message
    items[3] = (items[3][0], items[3][1], flipped)       # altered signature
    items[5] = (other_key, items[5][1], items[5][2])     # another signer
    items[7] = (items[7][0][:31], items[7][1], items[7][2])  # short key
    items[8] = (items[8][0], items[8][1], items[8][2][:63])  # short signature
    items[9] = (items[9][0], items[9][1], items[9][2][:32] + s_plus_l)
    items[10] = (bytes(32), items[10][1], items[10][2])  # small-order (zero) key
    expected = [i for i, (k, m, s) in enumerate(items) if not crypto.verify(k, m, s)]
    assert expected == [1, 3, 5, 7, 8, 9, 10]
    assert crypto.invalid_signatures(items) == expected


def test_a_repeated_triple_gets_the_same_verdict_every_time() -> None:
    good, bad = _signed(2)
    bad = (bad[0], bad[1] + b"x", bad[2])
    assert crypto.invalid_signatures([good, bad, good, bad, bad]) == [1, 3, 4]
