"""Where an audit reads a chain: a private copy of a node's data directory, or its API.

Rules:
- An auditor never alters evidence: a data directory is copied to a temporary folder
  before it is opened (opening a LevelDB writes to its directory).
- Damage is located: the four stored parts of a block are decoded one by one, a checksum
  mismatch is noted and the part still decoded when it can be, and an undecodable part
  names the transaction or receipt that breaks it.
- A node that does not answer, or not as a Tabellion node, raises ``NodeUnreachable``: the
  audit cannot run, which is not a finding about the chain.
- Keys are those of ``ledger.layout`` (the one owner of the data-directory layout).
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import tempfile
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeAlias

import httpx

from contracts.keys import VALIDATORS_KEY
from ledger.encoding import encode
from ledger.errors import DecodeError, LedgerError, StoreError
from ledger.genesis import Genesis
from ledger.jsonview import committed_block_from_json
from ledger.layout import (
    CHAIN_PREFIX,
    GENESIS_MARK,
    STATE_INDEX_PREFIX,
    STATE_NODES_PREFIX,
    STATE_PREFIX,
    STATE_VERSION_MARK,
)
from ledger.records import BlockHeader, ValidatorSet
from ledger.state import describe_node_key, version_key_prefix
from ledger.state_store import PersistentState
from ledger.store import PARTS, ChainStore, TxLocation, block_key
from verify.blocks import CheckedBlock, check_stored_block, decode_stored_block
from verify.chain import ChainAudit, Replayer
from verify.findings import Finding, StoredBlock
from verify.replay import ComparingNodeStore, EngineReplayer
from verify.stored import (
    ConsensusRecordChecker,
    check_consensus_records,
    check_foreign_keys,
    check_marks,
)

RequestSigner: TypeAlias = Callable[[httpx.Request], None]
"""Adds the headers of a signed read to a request (built by the caller: the read-access
rule belongs to the node, ``node.read_access``)."""
DECODE_AHEAD_BLOCKS = 4
"""Blocks decoded ahead of the audit by the decoder process (bounds memory)."""
BLOCKS_PREFIX = block_key(0, "")[:2]
"""Inside the chain space: where the stored block parts are (``ledger.store.block_key``)."""
TX_INDEX_PREFIX = b"t/"
"""Inside the chain space: the transaction-id index (``ledger.store``: ``t/`` + id ->
``TxLocation.key()``)."""
HEIGHT_BYTES = 8
"""The height part of ``TxLocation.key()`` (8 bytes big-endian, then the position)."""
TABLE_FILE_SUFFIXES = (".ldb", ".sst")
"""LevelDB files that are never modified once written (see ``_link_or_copy``)."""
CHECK_AHEAD_PER_WORKER = 3
"""Blocks queued per worker at level chain (bounds memory, keeps every worker busy)."""
INDEX_FINDINGS_MAX = 100
"""Index entries reported as wrong, at most (a wiped index would otherwise flood)."""
ANSWER_BYTES_MAX = 64 * 1024 * 1024
"""Largest answer read from a node: a block of 8 MiB (the consensus message limit) in JSON,
its bytes in hex and its field names, fits; the reading stops past it."""
STATUS_BYTES_MAX = 1024 * 1024
"""Largest status answer read (a few hundred bytes in practice)."""
NODE_HEAD_HEIGHT_MAX = 10**9
"""Highest head a node may report to be audited (a block a second for 31 years): the
audit walks every height up to it, and a lying node must not make that endless."""
NODE_FINDINGS_MAX = 1_000
"""Findings after which an audit stops reading a node: past them the node is serving
something else than a chain (junk at every height up to a head it claims), and each
further block would only cost one more request. A data directory is read to its end."""
HTTP_TIMEOUT_S = 30.0
"""Longest wait for one answer of a node: a block of 10,000 transactions takes a while."""


class BlockSource(Protocol):
    """Where the blocks come from: a copy of a data directory, or a node's API."""

    description: str

    def head_height(self) -> int: ...

    def blocks(self, start: int, stop: int) -> Iterator[StoredBlock]: ...

    def replayer(self, genesis: Genesis, after: int = 0) -> Replayer:
        """A replayer starting from genesis, or (``after`` > 0) from the state after
        block ``after`` (``LedgerError`` if the source cannot give that state)."""
        ...

    def header(self, height: int) -> BlockHeader:
        """The header stored at ``height`` (``LedgerError`` if unreadable)."""
        ...

    def validators_at(self, version: int) -> tuple[bytes | None, bytes]:
        """``sys/validators`` after block ``version`` with its encoded state proof (the
        chain level proves validator-set decisions with it)."""
        ...

    def other_network(self, genesis: Genesis) -> str | None:
        """Why the data is plainly of another network than ``genesis`` (then the auditor
        gave the wrong genesis file: the audit does not run), or ``None``."""
        ...

    def extra_checks(self, audit: ChainAudit) -> Iterable[Finding]: ...

    def close(self) -> None: ...


LEVELDB_MARKER = "CURRENT"
"""File every LevelDB directory holds: how a data directory's database is recognised."""


def find_leveldb(data: Path) -> Path:
    """The LevelDB directory of a node's data directory (itself, or one subdirectory)."""
    data = Path(data)
    if not data.is_dir():
        raise StoreError(f"{data} is not a directory: give the node's data directory")
    if (data / LEVELDB_MARKER).is_file():
        return data
    found = sorted(p.parent for p in data.glob(f"*/{LEVELDB_MARKER}"))
    if len(found) == 1:
        return found[0]
    if not found:
        raise StoreError(f"{data} holds no LevelDB database: is it a node's data directory?")
    chain = [p for p in found if p.name in ("chain", "ledger", "db")]
    if len(chain) == 1:
        return chain[0]
    raise StoreError(f"{data} holds several databases ({', '.join(p.name for p in found)}): "
                     "give the chain database's directory")


def _link_or_copy(src: str, dst: str) -> object:
    """Hard-link a LevelDB table file, copy anything else. Table files (``.ldb``,
    ``.sst``) are immutable once written: LevelDB only ever creates and deletes them, so
    the copy's compactions cannot reach the evidence through a link, and linking a
    large database costs nothing. Across filesystems (no link possible) it copies."""
    if src.endswith(TABLE_FILE_SUFFIXES):
        try:
            os.link(src, dst)
            return dst
        except OSError:
            pass
    return shutil.copy2(src, dst)


class PrivateCopy:
    """A node's LevelDB copied to a temporary folder: opening a LevelDB writes to its
    directory (lock, log recovery, compaction), and an auditor never alters evidence."""

    def __init__(self, data: Path) -> None:
        db = find_leveldb(data)
        self._tmp = tempfile.TemporaryDirectory(prefix="tabellion-audit-")
        self.path = Path(self._tmp.name) / "db"
        try:
            shutil.copytree(db, self.path, ignore=shutil.ignore_patterns("LOCK"),
                            copy_function=_link_or_copy)
        except OSError as exc:
            self._tmp.cleanup()
            raise StoreError(f"cannot copy {db} to audit it: {exc}") from exc

    def open(self) -> ChainStore:
        try:
            return ChainStore.open(self.path)
        except BaseException:
            self._tmp.cleanup()
            raise

    def cleanup(self) -> None:
        self._tmp.cleanup()


class DataDirSource:
    """Blocks and state read from a private copy of a node's LevelDB."""

    def __init__(self, data: Path, *, decoder: bool = False,
                 consensus_records: ConsensusRecordChecker | None = None) -> None:
        """``decoder``: decode blocks in a separate process, ahead of the audit (the
        main process then only checks and replays). ``consensus_records``: the checker
        of the replica's records (without one they are reported as unverifiable)."""
        self._copy = PrivateCopy(data)
        self._store = self._copy.open()
        self._records = consensus_records
        self._head_note: Finding | None = None
        self._state = PersistentState(self._store.kv.prefixed(STATE_PREFIX))
        self._decoder = ProcessPoolExecutor(1) if decoder else None
        self._chain = self._store.kv.prefixed(CHAIN_PREFIX)
        self._locations: dict[bytes, bytes] = {}
        """Where each transaction read is: ``TxLocation.key()``, as the index stores it."""
        self.description = f"data directory {data}"
        self._nodes: ComparingNodeStore | None = None
        self._replayer: EngineReplayer | None = None

    def head_height(self) -> int:
        """The head pointer, bounded by the blocks really stored: a damaged pointer must
        neither send the audit through billions of missing heights nor hide blocks."""
        pointer = self._store.head_height()
        last = 0
        for key, _ in self._chain.items(prefix=BLOCKS_PREFIX, reverse=True):
            last = int.from_bytes(key[len(BLOCKS_PREFIX):len(BLOCKS_PREFIX) + 8], "big")
            break
        if pointer != last:
            self._head_note = Finding(
                min(pointer, last), "block", f"the stored head pointer says height "
                f"{pointer:,} but blocks are stored up to height {last:,}: the pointer or "
                "the blocks after it were altered")
        return min(pointer, last)

    def blocks(self, start: int, stop: int) -> Iterator[StoredBlock]:
        """Blocks in height order; with a decoder process, decoded ahead of the audit."""
        if self._decoder is None:
            for height in range(start, stop):
                yield self._track(decode_stored_block(height, self._raw(height)))
            return
        ahead: deque[Future[StoredBlock]] = deque()
        for height in range(start, stop):
            ahead.append(self._decoder.submit(decode_stored_block, height, self._raw(height)))
            if len(ahead) > DECODE_AHEAD_BLOCKS:
                yield self._track(ahead.popleft().result())
        while ahead:
            yield self._track(ahead.popleft().result())

    def checked_blocks(self, start: int, stop: int, chain_id: str,
                       workers: int | None) -> Iterator[StoredBlock | CheckedBlock]:
        """Blocks read here and checked in ``workers`` processes (``check_stored_block``:
        decoding, transaction checks and signatures), handed back in height order."""
        count = workers or os.cpu_count() or 1
        with ProcessPoolExecutor(count) as pool:
            ahead: deque[Future[StoredBlock | CheckedBlock]] = deque()
            for height in range(start, stop):
                ahead.append(pool.submit(check_stored_block, height, self._raw(height),
                                         chain_id))
                if len(ahead) > CHECK_AHEAD_PER_WORKER * count:
                    yield self._track_checked(ahead.popleft().result())
            while ahead:
                yield self._track_checked(ahead.popleft().result())

    def _track_checked(self, checked: StoredBlock | CheckedBlock) -> StoredBlock | CheckedBlock:
        if isinstance(checked, StoredBlock):
            return self._track(checked)
        self._locate(checked.height, checked.facts.tx_ids)
        return checked

    def _locate(self, height: int, tx_ids: Sequence[bytes]) -> None:
        """Remember where the transactions of block ``height`` are (the first place an id
        appears wins: a transaction committed twice is the chain checker's finding)."""
        at = TxLocation(height, 0).key()[:HEIGHT_BYTES]
        where = [at + _position_key(position) for position in range(len(tx_ids))]
        locations = self._locations
        if locations.keys().isdisjoint(tx_ids) and len(set(tx_ids)) == len(tx_ids):
            locations.update(zip(tx_ids, where, strict=True))
            return
        for tx_id, location in zip(tx_ids, where, strict=True):
            locations.setdefault(tx_id, location)

    def _raw(self, height: int) -> dict[str, bytes | None]:
        return {part: self._chain.get(block_key(height, part)) for part in PARTS}

    def _track(self, stored: StoredBlock) -> StoredBlock:
        if stored.block is not None:
            self._locate(stored.height, [tx.tx_id for tx in stored.block.block.transactions])
        return stored

    def other_network(self, genesis: Genesis) -> str | None:
        mark = self._store.kv.get(GENESIS_MARK)
        if mark is None or mark == genesis.genesis_hash:
            return None  # without a mark, the chain itself is judged against the genesis
        return (f"this data directory was created for another network (genesis "
                f"{mark.hex()[:16]}…, the file given is {genesis.genesis_hash.hex()[:16]}…): "
                "give that network's genesis file")

    def replayer(self, genesis: Genesis, after: int = 0) -> Replayer:
        stored = self._store.kv.prefixed(STATE_PREFIX + STATE_NODES_PREFIX)
        if after == 0:
            self._nodes = ComparingNodeStore(stored)
            self._replayer = EngineReplayer(genesis, self._nodes)
        else:
            self._nodes = ComparingNodeStore(stored, from_version=after)
            items = dict(self._state.tree.items(after))
            self._replayer = EngineReplayer(
                genesis, self._nodes, start=(after, items),
                committed_up_to_start=lambda tx_id: self._store.committed_below(tx_id,
                                                                                after + 1))
        return self._replayer

    def header(self, height: int) -> BlockHeader:
        return self._store.header(height)

    def validators_at(self, version: int) -> tuple[bytes | None, bytes]:
        value = self._state.get(VALIDATORS_KEY, version)
        return value, encode(self._state.prove(VALIDATORS_KEY, version).to_value())

    def extra_checks(self, audit: ChainAudit) -> Iterable[Finding]:
        """Everything stored besides the blocks: the transaction index, the state (at
        level full), the marks, the replica's records, keys outside the layout."""
        kv = self._store.kv
        summary = audit.summary
        if self._head_note is not None:
            yield self._head_note
        yield from self._index_findings(audit.first_height)
        yield from self._state_findings(audit)
        view = _AuditedChain(self._store, audit)
        yield from check_marks(kv, audit.genesis, audit.history_if_complete(),
                               audit.summary.head_height, summary,
                               replayed=self._replayer is not None)
        yield from check_consensus_records(kv, self._records, view, summary)
        yield from check_foreign_keys(kv, summary)

    def _state_findings(self, audit: ChainAudit) -> Iterator[Finding]:
        if self._nodes is None or self._replayer is None:
            # Counted by version, not by key: the chain level must not read the state.
            audit.summary.cannot_verify(
                "versions of the stored state (s/: tree nodes and latest-value index): not "
                "compared at level chain (use --level full)",
                audit.summary.head_height + 1)
            return
        nodes_kv = self._store.kv.prefixed(STATE_PREFIX + STATE_NODES_PREFIX)
        latest = self._store.kv.prefixed(STATE_PREFIX).get(STATE_VERSION_MARK)
        head = audit.summary.head_height
        if latest != head.to_bytes(8, "big"):
            yield Finding(head, "state", "the stored state's latest-version marker is not "
                          f"the head height {head:,}")
        # Nodes above the head: a crash between the tree's write and the block's leaves
        # them (ledger.layout), no root reaches them, and executing that block writes them
        # again. Counted, not judged; the first one is named.
        above = 0
        first = ""
        for key, _ in nodes_kv.items(start=version_key_prefix(head + 1)):
            first = first or describe_node_key(key)
            above += 1
        if above:
            audit.summary.cannot_verify(
                "state-tree nodes above the head, unreachable from any certified root (left "
                f"by a write a crash interrupted; the first: {first})", above)
        sound_below = audit.replay_sound_below()
        for finding in self._nodes.findings:
            if finding.height < sound_below:
                yield finding
        if sound_below <= audit.summary.head_height:
            return
        # The flat index of latest values must be the replayed state, key for key.
        index = self._store.kv.prefixed(STATE_PREFIX + STATE_INDEX_PREFIX)
        replayed = self._replayer.state_items()
        written = self._replayer.last_written
        stored_keys = set()
        for key, value in index.items():
            stored_keys.add(key)
            if replayed.get(key) != value:
                yield Finding(written.get(key, audit.summary.head_height), "state",
                              f"the latest value of state key {key!r} in the stored index "
                              "differs from the replayed state")
        for key in sorted(set(replayed) - stored_keys):
            yield Finding(written.get(key, 0), "state",
                          f"state key {key!r} is missing from the stored index")

    def _index_findings(self, start: int) -> Iterator[Finding]:
        """Every transaction-id index entry points where the transaction is, and every
        transaction read has one (entries below ``start`` were judged by the audit that
        saved the point resumed from)."""
        reported = 0
        locations = self._locations
        for key, value in self._chain.items(prefix=TX_INDEX_PREFIX):
            tx_id = key[len(TX_INDEX_PREFIX):]
            stored_at = locations.pop(tx_id, None)
            if stored_at == value:
                continue  # the one comparison most entries need: same 12 bytes
            where = None if stored_at is None else _location(stored_at)
            at = _location(value)
            if at is not None and at.height < start and (
                    where is None or self._first_commit_holds(tx_id)):
                # an older transaction, judged by the audit that saved the point; or a
                # replay of it after the point, refused by the engine: the entry keeps the
                # first commit, which the block it points to must hold
                continue
            reported += 1
            if reported <= INDEX_FINDINGS_MAX:
                height = where.height if where else (at.height if at else 0)
                pointed = ("nothing readable" if at is None
                           else f"height {at.height:,}, position {at.index}")
                actual = (f", but the transaction is at height {where.height:,}, position "
                          f"{where.index}" if where is not None
                          else ", where no such transaction is stored")
                yield Finding(height, "block", f"the index entry of transaction "
                              f"{tx_id.hex()[:16]} points to {pointed}{actual}")
        missing = sorted((stored_at, tx_id) for tx_id, stored_at in locations.items())
        for stored_at, tx_id in missing:
            reported += 1
            if reported <= INDEX_FINDINGS_MAX:
                where = TxLocation.from_key(stored_at)
                yield Finding(where.height, "block", "the transaction has no index entry",
                              tx_id.hex(), where.index)

    def _first_commit_holds(self, tx_id: bytes) -> bool:
        """Whether the block the index entry of ``tx_id`` names holds it there (the store's
        own lookup checks the position)."""
        try:
            return self._store.transaction(tx_id) is not None
        except LedgerError:
            return False

    def close(self) -> None:
        if self._decoder is not None:
            self._decoder.shutdown(cancel_futures=True)
        self._store.close()
        self._copy.cleanup()


def _location(value: bytes) -> TxLocation | None:
    """The location an index entry holds, or ``None`` if it is not one."""
    try:
        return TxLocation.from_key(value)
    except DecodeError:
        return None


@functools.cache
def _position_key(position: int) -> bytes:
    """The position part of ``TxLocation.key()`` (the same few thousand, again and again)."""
    return TxLocation(0, position).key()[HEIGHT_BYTES:]


class NodeUnreachable(StoreError):
    """The node's API does not answer (or not as a Tabellion node): the audit cannot run."""


class AnswerTooLarge(NodeUnreachable):
    """The node sent more than the answer's limit (its reading stopped there)."""


@dataclass(frozen=True, slots=True)
class NodeAnswer:
    """One answer of a node, read whole (within its limit)."""

    status: int
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        """The body as JSON (``ValueError`` if it is not)."""
        return json.loads(self.body)


class NodeSource:
    """Blocks fetched from a node's HTTP API (``GET /v1/blocks/{h}``), in JSON."""

    def __init__(self, url: str, sign: RequestSigner | None = None) -> None:
        """``sign``: adds to every request the headers of a signed read (an auditor's or
        the town's key, ``node.read_access``), so blocks come with their social-aid
        payments in full (public reads hide them)."""
        self._url = url.rstrip("/")
        try:
            self._client = httpx.Client(base_url=self._url, timeout=HTTP_TIMEOUT_S,
                                        event_hooks={"request": [sign]} if sign else None)
        except httpx.InvalidURL as exc:
            raise NodeUnreachable(f"{url} is not a URL ({exc}): give the node's API address, "
                                  "e.g. http://127.0.0.1:8080") from exc
        self.description = f"node {self._url}"
        try:
            status = self.get_json("/v1/status", STATUS_BYTES_MAX)
        except NodeUnreachable:
            self.close()
            raise
        if not isinstance(status, dict) or not isinstance(status.get("height"), int):
            self.close()
            raise NodeUnreachable(f"{self._url} does not answer like a Tabellion node")
        self._head = int(status["height"])
        self._head_backed = False
        self._status = status

    def fetch(self, path: str, bytes_max: int = ANSWER_BYTES_MAX) -> NodeAnswer:
        """The answer of ``GET path``, whatever its status, read as a stream that stops at
        ``bytes_max`` bytes (``AnswerTooLarge``): a node cannot make the auditor hold
        more than that, whatever it announces. ``NodeUnreachable`` if no answer."""
        try:
            with self._client.stream("GET", path) as answer:
                announced = answer.headers.get("content-length", "")
                if announced.isdigit() and int(announced) > bytes_max:
                    raise AnswerTooLarge(self._too_large(path, bytes_max))
                body = bytearray()
                for chunk in answer.iter_bytes():
                    body += chunk
                    if len(body) > bytes_max:
                        raise AnswerTooLarge(self._too_large(path, bytes_max))
                return NodeAnswer(answer.status_code, bytes(body))
        except httpx.HTTPError as exc:
            raise NodeUnreachable(f"cannot reach {self._url}{path}: {exc}; is the node "
                                  "running and the URL right?") from exc

    def _too_large(self, path: str, bytes_max: int) -> str:
        return (f"{self._url}{path} sent more than {bytes_max:,} bytes: it does not answer "
                "like a Tabellion node")

    def get_json(self, path: str, bytes_max: int = ANSWER_BYTES_MAX) -> Any:
        """The JSON answer of ``GET path``, ``None`` on 404; ``NodeUnreachable`` otherwise."""
        answer = self.fetch(path, bytes_max)
        if answer.status == 404:
            return None
        if answer.status != 200:
            raise NodeUnreachable(f"{self._url}{path} answered {answer.status}: "
                                  f"{answer.text[:200]}")
        try:
            return answer.json()
        except ValueError as exc:
            raise NodeUnreachable(f"{self._url}{path} did not answer JSON") from exc

    def head_height(self) -> int:
        """The head the node reports, refused (``NodeUnreachable``) above
        ``NODE_HEAD_HEIGHT_MAX`` or when the node serves no block there: the audit walks
        up to it, so a height the blocks do not back would walk a range of nothing."""
        if self._head_backed:
            return self._head
        if not 0 <= self._head <= NODE_HEAD_HEIGHT_MAX:
            raise NodeUnreachable(
                f"{self._url} reports its head at height {self._head:,}, outside 0.."
                f"{NODE_HEAD_HEIGHT_MAX:,}: it does not answer like a Tabellion node")
        if self._head > 0 and self.get_json(f"/v1/blocks/{self._head}") is None:
            raise NodeUnreachable(
                f"{self._url} reports its head at height {self._head:,} but serves no block "
                "there: the blocks do not back the height it reports; audit another node, "
                "or a copy of its data directory (--data)")
        self._head_backed = True
        return self._head

    def blocks(self, start: int, stop: int) -> Iterator[StoredBlock]:
        """Blocks in height order; the walk ends at the first height the node has no block
        for (a hole below the head it reported is a finding, and nothing after it is read:
        a node cannot make the audit walk a range of missing blocks)."""
        for height in range(start, stop):
            obj = self.get_json(f"/v1/blocks/{height}")
            if obj is None:
                yield StoredBlock(height, None, f"the node has no block at height {height:,}, "
                                  f"below the head it reports ({self._head:,}); the audit "
                                  "stops here: the blocks after it were not read")
                return
            if any(isinstance(tx, dict) and tx.get("redacted")
                   for tx in obj.get("transactions", [])):
                yield StoredBlock(height, None, "the node hides social-aid payments from "
                                  "public readers: sign the reads with an auditor's key "
                                  "(--key), or audit a data directory (--data)")
                continue
            try:
                yield StoredBlock(height, committed_block_from_json(obj))
            except DecodeError as exc:
                yield StoredBlock(height, None, f"the node served a malformed block: {exc}")

    def other_network(self, genesis: Genesis) -> str | None:
        theirs = self._status.get("genesis_hash")
        if not isinstance(theirs, str) or theirs == genesis.genesis_hash.hex():
            return None
        return (f"the node serves another network (genesis {theirs[:16]}…, the file given "
                f"is {genesis.genesis_hash.hex()[:16]}…): give that network's genesis file")

    def validators_at(self, version: int) -> tuple[bytes | None, bytes]:
        found = self.get_json(f"/v1/state/{VALIDATORS_KEY.hex()}?height={version}")
        if not isinstance(found, dict) or not isinstance(found.get("proof"), str):
            raise NodeUnreachable(f"the node has no proof of the state at height {version}")
        value, proof = found.get("value"), found["proof"]
        try:
            return (None if value is None else bytes.fromhex(value)), bytes.fromhex(proof)
        except (ValueError, TypeError) as exc:
            raise NodeUnreachable("the node answered a state proof that is not hex") from exc

    def replayer(self, genesis: Genesis, after: int = 0) -> Replayer:
        # The node's stored state is not readable over the API: the replay keeps its own
        # tree in memory, and every state root is still checked against the headers.
        if after:
            raise StoreError("a node's API does not give a whole state: resume a full "
                             "audit (--since) on a data directory, or use --level chain")
        return EngineReplayer(genesis)

    def header(self, height: int) -> BlockHeader:
        stored = next(self.blocks(height, height + 1))
        if stored.block is None:
            raise NodeUnreachable(stored.problem or f"no block at height {height:,}")
        return stored.block.block.header

    def extra_checks(self, audit: ChainAudit) -> Iterable[Finding]:
        return ()

    def close(self) -> None:
        self._client.close()




class _AuditedChain:
    """``verify.stored.ChainView`` over the audited store and the audit's history."""

    def __init__(self, store: ChainStore, audit: ChainAudit) -> None:
        self._store = store
        self._audit = audit

    def head_height(self) -> int:
        return self._audit.summary.head_height

    def block_hash(self, height: int) -> bytes | None:
        if not 1 <= height <= self.head_height():
            return None
        try:
            return self._store.header(height).block_hash
        except LedgerError:
            return None  # the block itself is reported by the chain checker

    def validators_at(self, height: int) -> ValidatorSet:
        return self._audit.validators_at(height)


def open_source(data: Path | None, node: str | None, *,
                consensus_records: ConsensusRecordChecker | None = None,
                sign: RequestSigner | None = None) -> BlockSource:
    """The block source the options name; raise ``LedgerError`` if it cannot be opened."""
    if data is not None:
        return DataDirSource(data, decoder=(os.cpu_count() or 1) > 1,
                             consensus_records=consensus_records)
    if node is None:
        raise StoreError("give a data directory or a node URL")
    return NodeSource(node, sign)
