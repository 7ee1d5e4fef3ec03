"""Tampering helpers: change a node's LevelDB the way an intruder with disk access would.

They work through ``ledger.kv`` (the project's only door to plyvel) and follow the key
layouts of docs/adr/0004-store-layout.md (chain store) and ledger/state_store.py (state
under ``s/``). Each helper asserts that it found what it was asked to change, so a
layout change makes the tests fail loudly instead of tampering with nothing."""

from __future__ import annotations

from ledger.kv import KV
from ledger.layout import CHAIN_PREFIX, STATE_INDEX_PREFIX, STATE_NODES_PREFIX, STATE_PREFIX
from ledger.records import CommitCertificate, CommittedBlock
from ledger.store import PARTS, block_key, seal

STATE_NODES = STATE_PREFIX + STATE_NODES_PREFIX
STATE_INDEX = STATE_PREFIX + STATE_INDEX_PREFIX


def flip_inside(kv: KV, keys: list[bytes], needle: bytes, offset: int) -> bytes:
    """Flip one bit of the byte at ``offset`` (negative: from the end) inside the first
    occurrence of ``needle`` in the values of ``keys``; return the key changed."""
    for k in keys:
        value = kv.get(k)
        if value is None:
            continue
        at = value.find(needle)
        if at < 0:
            continue
        pos = at + offset % len(needle)
        kv.put(k, value[:pos] + bytes([value[pos] ^ 0x01]) + value[pos + 1:])
        return k
    raise AssertionError(f"{needle.hex()[:32]}… is in none of the values of {keys}")


def flip_state_value(kv: KV, state_key: bytes, version: int, *, index: bool = False) -> None:
    """Flip the last byte of the value of ``state_key`` in the leaf node written at
    ``version`` (or, with ``index``, in the flat index of latest values)."""
    if index:
        value = kv.get(STATE_INDEX + state_key)
        assert value is not None, f"{state_key!r} is in the state index"
        kv.put(STATE_INDEX + state_key, value[:-1] + bytes([value[-1] ^ 0x01]))
        return
    prefix = STATE_NODES + version.to_bytes(8, "big")
    for k, node in kv.items(prefix=prefix):
        if node[:1] == b"\x01" and len(node) >= 67:  # a leaf: kind, 2 hashes, key length
            size = int.from_bytes(node[65:67], "big")
            if node[67:67 + size] == state_key:
                kv.put(k, node[:-1] + bytes([node[-1] ^ 0x01]))
                return
    raise AssertionError(f"no leaf of {state_key!r} was written at version {version}")


def block_keys(kv: KV, height: int) -> list[bytes]:
    """The four stored parts of block ``height``: header, transactions, certificate,
    receipts."""
    keys = [CHAIN_PREFIX + block_key(height, part) for part in PARTS]
    assert all(kv.get(k) is not None for k in keys), f"block {height} is stored"
    return keys


def swap_blocks(kv: KV, a: int, b: int) -> None:
    """Exchange every stored part of blocks ``a`` and ``b`` (checksums stay valid)."""
    for ka, kb in zip(block_keys(kv, a), block_keys(kv, b), strict=True):
        va, vb = kv.get(ka), kv.get(kb)
        assert va is not None and vb is not None
        kv.put(ka, vb)
        kv.put(kb, va)


def replace_certificate(kv: KV, blk: CommittedBlock, cert: CommitCertificate) -> None:
    """Store ``cert`` as the certificate of ``blk``, with a valid checksum: what an
    intruder who knows the format would write."""
    key = CHAIN_PREFIX + block_key(blk.height, "c")
    assert kv.get(key) is not None
    kv.put(key, seal(cert.encode()))
