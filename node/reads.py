"""What the API reads from the node's chain and mempool: transactions, blocks, records
and state with proofs, as JSON-ready values.

Rules:
- Read-only: nothing here changes the chain, the state or the mempool.
- Bounded: one records page looks at most at ``RECORDS_SCAN_MAX`` transactions whatever
  its filters match, and answers with a cursor (``HEIGHT-INDEX``) to continue from; a
  cursor is validated (ASCII digits, a u64 height from 1 and a u32 index) before use.
- Errors a client can fix are ``ApiError`` (400 ``invalid_cursor``, 404
  ``unknown_height``), never a 500.
"""

from __future__ import annotations

import re
from collections.abc import Generator
from typing import Any

from contracts import engine
from ledger import jsonview
from ledger.encoding import encode
from ledger.errors import LedgerError, StoreError
from ledger.records import Receipt, Transaction
from ledger.store import TxLocation
from node.api import ApiError
from node.chain import Chain
from node.mempool import Mempool

RECORDS_SCAN_MAX = 5_000
"""Transactions one GET /v1/records looks at, whatever its filters match."""
CURSOR_HEIGHT_MAX = 2**64 - 1
CURSOR_INDEX_MAX = 2**32 - 1
"""A records cursor names a stored location: a u64 height (from 1) and a u32 index."""
_CURSOR_RE = re.compile(r"([0-9]{1,20})-([0-9]{1,10})", re.ASCII)


class ChainReads:
    """The node's read answers."""

    def __init__(self, chain: Chain, mempool: Mempool) -> None:
        self.chain = chain
        self.mempool = mempool

    def transaction(self, tx_id: bytes) -> dict[str, Any] | None:
        found = self.chain.store.transaction(tx_id)
        if found is not None:
            tx, receipt, location = found
            return {
                "tx_id": tx_id.hex(), "status": "committed", "height": location.height,
                "index": location.index, "receipt": jsonview.receipt_to_json(receipt),
                "transaction": jsonview.tx_to_json(tx),
            }
        pending = self.mempool.get(tx_id)
        if pending is not None:
            return {"tx_id": tx_id.hex(), "status": "pending",
                    "transaction": jsonview.tx_to_json(pending)}
        return None

    def block(self, height: int | None) -> dict[str, Any] | None:
        head = self.chain.height
        h = head if height is None else height
        if not 1 <= h <= head:
            return None
        return jsonview.committed_block_to_json(self.chain.store.get(h))

    def records(self, contract: str | None, municipality: str | None, kind: str | None,
                after: str | None, limit: int) -> dict[str, Any]:
        """Committed transactions, oldest first; at most ``RECORDS_SCAN_MAX`` are looked
        at per request, so a filter matching little still answers quickly (with a
        cursor to continue from)."""
        cursor = _parse_cursor(after)
        found: list[dict[str, Any]] = []
        last: TxLocation | None = None
        scan = self._scan(contract, cursor)
        scanned_all = False
        while True:
            try:
                location, tx, receipt = next(scan)
            except StopIteration as end:
                scanned_all = end.value
                break
            last = location
            if kind is not None and tx.action != kind:
                continue
            if municipality is not None and _municipality_of(tx) != municipality:
                continue
            found.append({
                "tx_id": tx.tx_id.hex(), "height": location.height, "index": location.index,
                "contract": tx.contract, "action": tx.action, "payload": tx.payload,
                "signer": tx.signer.hex(), "receipt": jsonview.receipt_to_json(receipt),
            })
            if len(found) >= limit:
                break
        done = last is None or (len(found) < limit and scanned_all)
        return {"records": found,
                "next": None if done or last is None else f"{last.height}-{last.index}"}

    def _scan(self, contract: str | None, after: TxLocation | None
              ) -> Generator[tuple[TxLocation, Transaction, Receipt], None, bool]:
        """Committed transactions after ``after`` (of ``contract`` if given), at most
        ``RECORDS_SCAN_MAX``; returns whether it reached the end of the chain."""
        store = self.chain.store
        seen = 0
        if contract is not None:
            position = after
            while True:
                page = store.txs_by_contract(contract, after=position, limit=200)
                for location in page:
                    stored = store.get(location.height)
                    yield (location, stored.block.transactions[location.index],
                           stored.receipts[location.index])
                    seen += 1
                    if seen >= RECORDS_SCAN_MAX:
                        return False
                if len(page) < 200:
                    return True
                position = page[-1]
        start = 1 if after is None else after.height
        for height in range(start, self.chain.height + 1):
            stored = store.get(height)
            for index, tx in enumerate(stored.block.transactions):
                location = TxLocation(height, index)
                if after is not None and location <= after:
                    continue
                yield location, tx, stored.receipts[index]
                seen += 1
                if seen >= RECORDS_SCAN_MAX:
                    return False
        return True

    def state(self, key: bytes, height: int | None) -> dict[str, Any]:
        executed = self.chain.executed_height
        version = executed if height is None else height
        if version > executed:
            raise ApiError(404, "unknown_height",
                           f"the state is known up to height {executed}: ask for a lower "
                           "height, or wait")
        try:
            value = self.chain.state.get(key, version)
            proof = self.chain.state.prove(key, version)
            root = self.chain.state.root(version)
        except StoreError as exc:
            raise ApiError(404, "unknown_height", str(exc)) from exc
        certified_in = version + self.chain.lag
        return {
            "key": key.hex(), "height": version,
            "value": None if value is None else value.hex(),
            "state_root": root.hex(),
            "proof": encode(proof.to_value()).hex(),
            "header_height": certified_in if certified_in <= self.chain.height else None,
        }


def _parse_cursor(after: str | None) -> TxLocation | None:
    if after is None or after == "":
        return None
    # ASCII digits only ("²".isdigit() holds, int("²") fails) and within the u64 height
    # and u32 index of a stored location: anything else is a client error, not a 500.
    match = _CURSOR_RE.fullmatch(after)
    if (match is None or not 1 <= int(match[1]) <= CURSOR_HEIGHT_MAX
            or int(match[2]) > CURSOR_INDEX_MAX):
        raise ApiError(400, "invalid_cursor",
                       "after must be the 'next' value of a previous page (HEIGHT-INDEX)")
    return TxLocation(int(match[1]), int(match[2]))


def _municipality_of(tx: Transaction) -> str | None:
    """The SIRET a transaction writes for: the payload field its action names."""
    try:
        action = engine.REGISTRY.lookup(tx.contract, tx.action)
    except LedgerError:
        return None
    field = action.municipality_field
    value = tx.payload.get(field) if field is not None else None
    return value if isinstance(value, str) else None
