"""The chain store: append and read back, indexes, pagination, refusals, corruption."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger import store as store_module
from ledger.encoding import decode, encode
from ledger.errors import CorruptionError, StoreError
from ledger.kv import KV
from ledger.layout import CHAIN_PREFIX
from ledger.records import BLOCK_TXS_MAX, CommittedBlock, Receipt
from ledger.store import (
    PAGE_LIMIT_MAX,
    PARTS,
    ChainStore,
    TxLocation,
    block_key,
    seal,
    unseal,
)
from ledger.validation import verify_certificate
from testkit import chainbuilder as cb


@pytest.fixture(scope="module")
def chain() -> list[CommittedBlock]:
    return cb.ledger_chain(6)


def _filled(path: Path, chain: list[CommittedBlock]) -> ChainStore:
    """A store holding ``chain``, reopened: its reads come from the disk (the store keeps
    the blocks it just wrote in memory, where altering the files could not reach them)."""
    with ChainStore.open(path) as store:
        for block in chain:
            store.append(block)
    return ChainStore.open(path)


def _raw(store: ChainStore) -> KV:
    return store.kv.prefixed(CHAIN_PREFIX)


def _tamper(store: ChainStore, key: bytes, value: bytes) -> None:
    """Write behind the store's back, straight into LevelDB."""
    _raw(store).put(key, value, sync=True)


def test_the_builder_makes_real_certified_blocks(chain: list[CommittedBlock]) -> None:
    for block in chain:
        verify_certificate(block.certificate, block.block.header,
                           cb.make_network().genesis.validator_set,
                           chain_id=block.block.header.chain_id)
        assert all(tx.signature_valid() for tx in block.block.transactions)


def test_blocks_read_back_identical_after_reopen(
    tmp_path: Path, chain: list[CommittedBlock]
) -> None:
    _filled(tmp_path / "db", chain).close()
    with ChainStore.open(tmp_path / "db", create=False) as store:
        assert store.head_height() == len(chain)
        assert list(store.blocks()) == chain
        assert list(store.blocks(2, 4)) == chain[1:3]
        assert store.head() == chain[-1]
        assert store.header(3) == chain[2].block.header


def test_an_empty_store_has_no_head(tmp_path: Path) -> None:
    with ChainStore.open(tmp_path / "db") as store:
        assert store.head_height() == 0 and store.head() is None
        assert list(store.blocks()) == []
        with pytest.raises(StoreError, match="no block at height 1"):
            store.get(1)


def test_every_transaction_is_indexed(tmp_path: Path, chain: list[CommittedBlock]) -> None:
    with _filled(tmp_path / "db", chain) as store:
        for block in chain:
            for index, tx in enumerate(block.block.transactions):
                found = store.transaction(tx.tx_id)
                assert found is not None
                assert found[0] == tx and found[1] == block.receipts[index]
                assert found[2] == TxLocation(block.height, index)
                assert store.has_tx(tx.tx_id)
        assert not store.has_tx(b"\x00" * 32)
        assert store.transaction(b"\x00" * 32) is None


def _all_pages(fetch: Callable[..., list[TxLocation]], limit: int) -> list[TxLocation]:
    """Every location, fetched page by page with the cursor of the previous page."""
    out: list[TxLocation] = []
    while True:
        page = fetch(after=out[-1] if out else None, limit=limit)
        out.extend(page)
        if len(page) < limit:
            return out


def test_signer_and_contract_indexes_paginate(tmp_path: Path, chain: list[CommittedBlock]) -> None:
    with _filled(tmp_path / "db", chain) as store:
        for key in cb.SIGNER_KEYS:
            expected = [
                TxLocation(b.height, i) for b in chain
                for i, tx in enumerate(b.block.transactions) if tx.signer == key.public_key
            ]
            assert expected
            for limit in (1, 4, 100):
                got = _all_pages(
                    lambda after, limit, k=key.public_key: store.txs_by_signer(
                        k, after=after, limit=limit), limit)
                assert got == expected
        every = [TxLocation(b.height, i) for b in chain for i in range(len(b.block.transactions))]
        assert store.txs_by_contract("notary", limit=1000) == every
        assert store.txs_by_contract("notary", after=every[4], limit=2) == every[5:7]
        assert store.txs_by_contract("deliberations") == []
        assert store.txs_by_contract("") == [] and store.txs_by_contract("x" * 65) == []
        assert store.txs_by_signer(b"\x01" * 31) == []
        with pytest.raises(ValueError, match="limit"):
            store.txs_by_contract("notary", limit=0)


def test_a_page_holds_at_most_the_limit(tmp_path: Path) -> None:
    signer = cb.SIGNER_KEYS[0]
    builder = cb.ChainBuilder(execute=False)
    builder.add_block([cb.signed_tx(signer, n) for n in range(PAGE_LIMIT_MAX + 5)])
    with _filled(tmp_path / "db", builder.blocks) as store:
        page = store.txs_by_signer(signer.public_key, limit=10 * PAGE_LIMIT_MAX)
        assert len(page) == PAGE_LIMIT_MAX
        assert store.txs_by_signer(signer.public_key, after=page[-1]) == [
            TxLocation(1, PAGE_LIMIT_MAX + i) for i in range(5)
        ]


def test_contract_names_sharing_a_start_never_mix(tmp_path: Path) -> None:
    signer = cb.SIGNER_KEYS[0]
    names = ["notary", "notary\x00x", "notaryx", "notar", "n\u00f6tary"]
    builder = cb.ChainBuilder(execute=False)
    builder.add_block([cb.signed_tx(signer, n, contract=name) for n, name in enumerate(names)])
    with _filled(tmp_path / "db", builder.blocks) as store:
        for index, name in enumerate(names):
            assert store.txs_by_contract(name) == [TxLocation(1, index)]


def test_a_replayed_transaction_keeps_its_first_commit(tmp_path: Path) -> None:
    """A replay ordered into a later block is refused by execution: looking the id up
    must still give the original commit and its receipt."""
    builder = cb.ChainBuilder(execute=False)
    original = builder.add_anchors(2)
    tx = original.block.transactions[1]
    builder.add_anchors(1)
    replay = builder.add_block([tx])
    refused = (Receipt(tx.tx_id, "already_committed", "already committed", {}),)
    builder.blocks[-1] = replay = replace(replay, receipts=refused)
    with _filled(tmp_path / "db", builder.blocks) as store:
        found = store.transaction(tx.tx_id)
        assert found is not None
        assert found[1] == original.receipts[1] and found[2] == TxLocation(1, 1)
        assert store.get(3).receipts == refused
        assert TxLocation(3, 0) in store.txs_by_signer(tx.signer)


def test_refuses_a_block_out_of_order(tmp_path: Path, chain: list[CommittedBlock]) -> None:
    with ChainStore.open(tmp_path / "db") as store:
        with pytest.raises(StoreError, match="head is 0, so the next block is 1"):
            store.append(chain[1])
        store.append(chain[0])
        with pytest.raises(StoreError, match="head is 1"):
            store.append(chain[0])
        assert store.head_height() == 1


def test_refuses_mismatched_certificate_and_receipts(
    tmp_path: Path, chain: list[CommittedBlock]
) -> None:
    first = chain[0]
    shifted = first.receipts[1:] + first.receipts[:1]
    with ChainStore.open(tmp_path / "db") as store:
        with pytest.raises(StoreError, match="certificate is for another header"):
            store.append(replace(first, certificate=chain[1].certificate))
        with pytest.raises(StoreError, match="certificate is for another header"):
            store.append(replace(first, certificate=replace(first.certificate, height=2)))
        with pytest.raises(StoreError, match="receipts do not pair"):
            store.append(replace(first, receipts=first.receipts[:-1]))
        with pytest.raises(StoreError, match="receipts do not pair"):
            store.append(replace(first, receipts=shifted))
        assert store.head_height() == 0 and not store.has_tx(first.block.transactions[0].tx_id)


def test_refuses_a_block_that_does_not_chain(tmp_path: Path, chain: list[CommittedBlock]) -> None:
    other = cb.ledger_chain(2, txs_per_block=1)
    with ChainStore.open(tmp_path / "db") as store:
        store.append(chain[0])
        with pytest.raises(StoreError, match="prev_hash does not match the stored block 1"):
            store.append(other[1])
        header = replace(chain[1].block.header, chain_id="another-network")
        foreign = CommittedBlock(
            replace(chain[1].block, header=header), cb.ChainBuilder(execute=False).certify(header),
            chain[1].receipts
        )
        with pytest.raises(StoreError, match="for network 'another-network'"):
            store.append(foreign)
        assert store.head_height() == 1


@pytest.mark.parametrize("part", ["h", "t", "c", "r"])
def test_a_flipped_byte_is_reported_never_returned(
    tmp_path: Path, chain: list[CommittedBlock], part: str
) -> None:
    with _filled(tmp_path / "db", chain) as store:
        key = block_key(4, part)
        value = _raw(store).get(key)
        assert value is not None
        for position in (0, 40, len(value) - 1):  # checksum, body start, body end
            flipped = bytearray(value)
            flipped[position] ^= 0x40
            _tamper(store, key, bytes(flipped))
            with pytest.raises(CorruptionError, match=r"block 4: .*restore it from a peer"):
                store.get(4)
        assert store.get(3) == chain[2]


def test_blocks_just_written_are_served_from_memory_within_the_transaction_bound(
    tmp_path: Path, chain: list[CommittedBlock], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The newest blocks a store wrote are kept decoded, as many as hold at most
    ``BLOCK_CACHE_TXS_MAX`` transactions; older ones are read, and checked, from disk."""
    recent = sum(len(b.block.transactions) for b in chain[-2:])
    assert recent < sum(len(b.block.transactions) for b in chain[-3:])
    monkeypatch.setattr(store_module, "BLOCK_CACHE_TXS_MAX", recent)
    with ChainStore.open(tmp_path / "db") as store:
        for block in chain:
            store.append(block)
        for height in range(1, len(chain) + 1):
            _tamper(store, block_key(height, "t"), b"damaged")
        assert [store.get(h) for h in (5, 6)] == chain[-2:]  # in memory: written, intact
        for height in range(1, 5):
            with pytest.raises(CorruptionError, match=f"block {height}: "):
                store.get(height)


def _reseal(store: ChainStore, height: int, part: str, change: Callable[[Any], Any]) -> None:
    """Alter a part and recompute its checksum, as a careless repair would."""
    key = block_key(height, part)
    raw = _raw(store).get(key)
    assert raw is not None
    _tamper(store, key, seal(encode(change(decode(unseal(raw, height, part))))))


@pytest.mark.parametrize(("part", "change", "message"), [
    ("t", lambda txs: txs[::-1], "transactions do not match the header's txs_root"),
    ("c", lambda cert: [cert[0], cert[1], b"\x00" * 32, cert[3]], "certificate is for another"),
    ("c", lambda cert: [cert[0] + 1, *cert[1:]], "certificate is for another header"),
    ("r", lambda receipts: receipts[::-1], "receipts do not pair"),
    ("r", lambda receipts: receipts[:-1], "receipts do not pair"),
    ("h", lambda header: [header[0], header[1] + 1, *header[2:]], "header is for height 5"),
    ("h", lambda header: header[:-1], "header is malformed"),
    ("t", lambda txs: {"not": "a list"}, "malformed"),
])
def test_a_consistently_resealed_part_is_still_caught(
    tmp_path: Path, chain: list[CommittedBlock], part: str, change: Callable[[Any], Any],
    message: str,
) -> None:
    with _filled(tmp_path / "db", chain) as store:
        _reseal(store, 4, part, change)
        with pytest.raises(CorruptionError, match=f"block 4: .*{message}"):
            store.get(4)


def test_a_missing_part_is_reported(tmp_path: Path, chain: list[CommittedBlock]) -> None:
    with _filled(tmp_path / "db", chain) as store:
        _raw(store).delete(block_key(2, "c"))
        with pytest.raises(CorruptionError, match="block 2: the stored certificate is missing"):
            store.get(2)


def test_damaged_index_entries_are_reported(tmp_path: Path, chain: list[CommittedBlock]) -> None:
    tx = chain[1].block.transactions[0]
    other = chain[1].block.transactions[1]
    with _filled(tmp_path / "db", chain) as store:
        _tamper(store, b"t/" + tx.tx_id, TxLocation(2, 1).key())  # points at another tx
        with pytest.raises(CorruptionError, match=r"block 2: the index entry .* another"):
            store.transaction(tx.tx_id)
        _tamper(store, b"t/" + tx.tx_id, TxLocation(99, 0).key())  # past the head
        with pytest.raises(CorruptionError, match=r"index entry .* is damaged"):
            store.has_tx(tx.tx_id)
        _tamper(store, b"t/" + other.tx_id, b"\x01")
        with pytest.raises(CorruptionError, match=r"index entry .* is damaged"):
            store.tx_location(other.tx_id)
        _tamper(store, b"s/" + tx.signer + b"\x00\x01", b"")
        with pytest.raises(CorruptionError, match=r"an index entry .* is damaged"):
            store.txs_by_signer(tx.signer, limit=1000)


def test_a_damaged_head_pointer_is_reported_on_open(
    tmp_path: Path, chain: list[CommittedBlock]
) -> None:
    with _filled(tmp_path / "db", chain) as store:
        _raw(store).put(b"H", b"\x00\x05", sync=True)
    with pytest.raises(CorruptionError, match="head pointer is damaged"):
        ChainStore.open(tmp_path / "db")


def test_heights_outside_the_chain_are_a_clear_error(
    tmp_path: Path, chain: list[CommittedBlock]
) -> None:
    with _filled(tmp_path / "db", chain) as store:
        for height in (0, len(chain) + 1):
            with pytest.raises(StoreError, match=f"no block at height {height}"):
                store.get(height)
            with pytest.raises(StoreError, match=f"no block at height {height}"):
                store.header(height)


def test_a_second_opener_is_told_a_node_may_be_running(tmp_path: Path) -> None:
    with ChainStore.open(tmp_path / "db") as store:
        with pytest.raises(StoreError, match="is a node already running on this data directory"):
            ChainStore.open(tmp_path / "db")
        assert store.head_height() == 0


def test_opening_a_missing_directory_without_create_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no Tabellion data"):
        ChainStore.open(tmp_path / "absent", create=False)
    assert not (tmp_path / "absent").exists()


@settings(max_examples=15, deadline=None)
@given(st.lists(st.lists(st.tuples(st.integers(0, 2), st.sampled_from(["a", "b", "a\x00"])),
                         max_size=6), min_size=1, max_size=5),
       st.integers(1, 4))
def test_index_pages_match_a_scan_of_the_chain(
    shape: list[list[tuple[int, str]]], limit: int
) -> None:
    builder = cb.ChainBuilder(execute=False)
    nonce = 0
    for txs in shape:
        block_txs = []
        for signer, contract in txs:
            nonce += 1
            block_txs.append(cb.signed_tx(cb.SIGNER_KEYS[signer], nonce, contract=contract))
        builder.add_block(block_txs)
    located = [(TxLocation(b.height, i), tx) for b in builder.blocks
               for i, tx in enumerate(b.block.transactions)]
    with tempfile.TemporaryDirectory() as tmp, _filled(Path(tmp), builder.blocks) as store:
        for key in cb.SIGNER_KEYS:
            assert _all_pages(
                lambda after, limit, k=key.public_key: store.txs_by_signer(
                    k, after=after, limit=limit), limit,
            ) == [at for at, tx in located if tx.signer == key.public_key]
        for name in ("a", "b", "a\x00"):
            assert _all_pages(
                lambda after, limit, n=name: store.txs_by_contract(n, after=after, limit=limit),
                limit,
            ) == [at for at, tx in located if tx.contract == name]


def test_refuses_more_transactions_than_a_block_may_hold(
    tmp_path: Path, chain: list[CommittedBlock]
) -> None:
    first = chain[0]
    txs = first.block.transactions * (BLOCK_TXS_MAX // len(first.block.transactions) + 1)
    oversized = CommittedBlock(
        replace(first.block, transactions=txs), first.certificate, first.receipts * (len(txs) // 3)
    )
    with ChainStore.open(tmp_path / "db") as store:
        with pytest.raises(StoreError, match=f"more than {BLOCK_TXS_MAX} transactions"):
            store.append(oversized)
        assert store.head_height() == 0


@pytest.fixture(scope="module")
def shared_store(
    tmp_path_factory: pytest.TempPathFactory, chain: list[CommittedBlock]
) -> Iterator[ChainStore]:
    """One filled store for the examples below; each restores what it altered."""
    with _filled(tmp_path_factory.mktemp("flips") / "db", chain) as store:
        yield store


@settings(max_examples=150, deadline=None)
@given(height=st.integers(1, 6), part=st.sampled_from(sorted(PARTS)), where=st.floats(0, 1),
       bit=st.integers(0, 7))
def test_any_flipped_bit_of_a_stored_block_is_reported(
    shared_store: ChainStore, chain: list[CommittedBlock], height: int, part: str,
    where: float, bit: int,
) -> None:
    store = shared_store
    key = block_key(height, part)
    value = _raw(store).get(key)
    assert value is not None
    position = min(int(where * len(value)), len(value) - 1)
    flipped = bytearray(value)
    flipped[position] ^= 1 << bit
    _tamper(store, key, bytes(flipped))
    reopened = ChainStore(store.kv)  # a fresh store object: nothing cached
    try:
        with pytest.raises(CorruptionError, match=f"block {height}: the stored {PARTS[part]}"):
            reopened.get(height)
    finally:
        _tamper(store, key, value)
    assert ChainStore(store.kv).get(height) == chain[height - 1]
