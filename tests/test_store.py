"""The chain store: append and read back, indexes, pagination, refusals, corruption."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from ledger.errors import CorruptionError, StoreError
from ledger.records import CommittedBlock
from ledger.store import CHAIN_PREFIX, ChainStore, TxLocation, block_key
from tests.audit.chain import TOWNS, ChainBuilder, make_network


def _chain(blocks: int, txs_per_block: int = 3) -> list[CommittedBlock]:
    builder = ChainBuilder(make_network())
    siret = TOWNS[0][1]
    for b in range(blocks):
        txs = [
            builder.tx(f"clerk:{siret}", "notary", "anchor",
                       {"sha256": f"{b:032x}{i:032x}", "doc_type": "arrete",
                        "reference": f"A-{b}-{i}", "municipality": siret})
            for i in range(txs_per_block)
        ]
        builder.add_block(txs)
    return builder.blocks


@pytest.fixture(scope="module")
def chain() -> list[CommittedBlock]:
    return _chain(6)


def _filled(path: Path, chain: list[CommittedBlock]) -> ChainStore:
    store = ChainStore.open(path)
    for block in chain:
        store.append(block)
    return store


def test_blocks_read_back_identical_after_reopen(
    tmp_path: Path, chain: list[CommittedBlock]
) -> None:
    _filled(tmp_path / "db", chain).close()
    with ChainStore.open(tmp_path / "db", create=False) as store:
        assert store.head_height() == len(chain)
        assert list(store.blocks()) == chain
        assert store.head() == chain[-1]
        assert store.header(3) == chain[2].block.header


def test_every_transaction_is_indexed(tmp_path: Path, chain: list[CommittedBlock]) -> None:
    with _filled(tmp_path / "db", chain) as store:
        for block in chain:
            for index, tx in enumerate(block.block.transactions):
                found = store.transaction(tx.tx_id)
                assert found is not None
                assert found[0] == tx and found[1] == block.receipts[index]
                assert found[2] == TxLocation(block.height, index)
        assert not store.has_tx(b"\x00" * 32)


def test_signer_and_contract_indexes_paginate(tmp_path: Path, chain: list[CommittedBlock]) -> None:
    signer = chain[0].block.transactions[0].signer
    with _filled(tmp_path / "db", chain) as store:
        first = store.txs_by_signer(signer, limit=4)
        rest = store.txs_by_signer(signer, after=first[-1], limit=100)
        every = first + rest
        assert len(every) == sum(len(b.block.transactions) for b in chain)
        assert every == sorted(every) and len(set(every)) == len(every)
        assert store.txs_by_contract("notary", limit=1000) == every
        assert store.txs_by_contract("deliberations") == []


def test_refuses_a_block_out_of_order(tmp_path: Path, chain: list[CommittedBlock]) -> None:
    with ChainStore.open(tmp_path / "db") as store:
        with pytest.raises(StoreError, match="head is 0"):
            store.append(chain[1])
        store.append(chain[0])
        with pytest.raises(StoreError, match="head is 1"):
            store.append(chain[0])


def test_refuses_mismatched_certificate_and_receipts(
    tmp_path: Path, chain: list[CommittedBlock]
) -> None:
    with ChainStore.open(tmp_path / "db") as store:
        with pytest.raises(StoreError, match="certificate"):
            store.append(replace(chain[0], certificate=chain[1].certificate))
        with pytest.raises(StoreError, match="receipts"):
            store.append(replace(chain[0], receipts=chain[0].receipts[:-1]))
        assert store.head_height() == 0


def test_refuses_a_block_that_does_not_chain(tmp_path: Path, chain: list[CommittedBlock]) -> None:
    other = _chain(2, txs_per_block=1)
    with ChainStore.open(tmp_path / "db") as store:
        store.append(chain[0])
        with pytest.raises(StoreError, match="prev_hash"):
            store.append(other[1])


@pytest.mark.parametrize("part", ["h", "t", "c", "r"])
def test_a_flipped_byte_is_reported_never_returned(
    tmp_path: Path, chain: list[CommittedBlock], part: str
) -> None:
    with _filled(tmp_path / "db", chain) as store:
        raw = store.kv.prefixed(CHAIN_PREFIX)
        key = block_key(4, part)
        value = raw.get(key)
        assert value is not None
        raw.put(key, value[:-1] + bytes([value[-1] ^ 0x40]))
        with pytest.raises(CorruptionError, match="block 4"):
            store.get(4)
        assert store.get(3) == chain[2]


def test_a_missing_part_is_reported(tmp_path: Path, chain: list[CommittedBlock]) -> None:
    with _filled(tmp_path / "db", chain) as store:
        store.kv.prefixed(CHAIN_PREFIX).delete(block_key(2, "c"))
        with pytest.raises(CorruptionError, match="block 2: the stored certificate is missing"):
            store.get(2)


def test_heights_outside_the_chain_are_a_clear_error(
    tmp_path: Path, chain: list[CommittedBlock]
) -> None:
    with _filled(tmp_path / "db", chain) as store, pytest.raises(StoreError, match="no block"):
        store.get(len(chain) + 1)
