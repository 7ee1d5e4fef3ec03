"""The genesis file: the one thing an auditor trusts.

Rules:
- The file is JSON, meant to be read and edited by people; keys are hex strings.
- ``load_genesis`` validates every field and raises ``GenesisError`` naming the field.
- The genesis hash is the tagged hash of the canonical encoding of the *normalised*
  content (``Genesis.to_value``), so whitespace or key order in the file never change it.
- The first block's ``prev_hash`` is the genesis hash: a chain is bound to its genesis.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ledger.encoding import Value, encode
from ledger.errors import GenesisError
from ledger.files import read_text_bounded
from ledger.hashing import Tag, tagged_hash
from ledger.records import (
    BLOCK_TXS_MAX,
    CERT_VOTES_MAX,
    CHAIN_ID_BYTES_MAX,
    NAME_BYTES_MAX,
    ValidatorSet,
)
from ledger.siret import siret_problem

GENESIS_FILE_BYTES_MAX = 4 * 1024 * 1024
ROLES = ("admin", "clerk", "social_aid_agent", "auditor", "intake", "meter_gateway")
"""Appended, never reordered (identity sorts a key's roles by this order). ``intake``
files citizen reports only (a town's Open311 front end), ``meter_gateway`` files meter
readings only: machine keys get the one right they need."""
GENESIS_TIME_MS_MAX = 2**63 - 1
APPROVAL_DENOMINATOR_MAX = 1000
"""Largest denominator (hence numerator) of the governance approval fraction, in a genesis
file and in a governance ``set_parameter`` alike (contracts.governance imports it; ADR 0018)."""
CHECKPOINT_INTERVAL_MAX = 10_000
"""Largest ``consensus.checkpoint_interval`` (K): K bounds the heights between two stable
checkpoints, hence what a replica keeps and a lagging one fetches."""
BLOCK_TXS_MAX_CEILING = BLOCK_TXS_MAX
"""Largest ``consensus.block_txs_max``: a block must stay decodable, and the decoder
accepts at most ``ledger.records.BLOCK_TXS_MAX`` transactions."""
BLOCK_BYTES_MAX_FLOOR = 1024
"""Smallest ``consensus.block_bytes_max``: a block must hold at least a small transaction."""
BLOCK_BYTES_MAX_CEILING = 8 << 20
"""Largest ``consensus.block_bytes_max`` (8 MiB): a whole block travels in one pre-prepare,
and a consensus message is at most ``consensus.messages.MESSAGE_BYTES_MAX`` (8 MiB too)."""
VIEW_TIMEOUT_MS_MIN = 100
"""Shortest ``consensus.view_timeout_ms``: below it a healthy primary on a real network
would be replaced before its pre-prepare arrives."""
VIEW_TIMEOUT_MS_MAX = 600_000
"""Longest ``consensus.view_timeout_ms`` (10 minutes): a crashed primary must be replaced
while clerks still wait."""
MUNICIPALITIES_MAX = CERT_VOTES_MAX
"""Most municipalities at genesis: each runs one validator, and a validator set (like a
commit certificate) holds at most ``ledger.records.CERT_VOTES_MAX`` keys."""
CHAIN_ID_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


@dataclass(frozen=True, slots=True)
class ConsensusParams:
    """Consensus parameters fixed at genesis (changeable later only by governance)."""

    checkpoint_interval: int = 16
    """K: a checkpoint is taken every K heights."""
    watermark_window: int = 64
    """L: heights accepted above the low watermark (a multiple of K)."""
    block_txs_max: int = 2000
    """Most transactions a block may carry."""
    block_bytes_max: int = 2 * 1024 * 1024
    """Most encoded transaction bytes a block may carry."""
    view_timeout_ms: int = 2000
    """Base view-change timeout; doubled after each failed view change."""
    execution_lag: int = 4
    """D: header h carries the results of block h - D; also the most heights in flight."""

    def to_value(self) -> list[Value]:
        return [
            self.checkpoint_interval, self.watermark_window, self.block_txs_max,
            self.block_bytes_max, self.view_timeout_ms, self.execution_lag,
        ]


@dataclass(frozen=True, slots=True)
class Member:
    """A key enrolled at genesis with a role in its municipality."""

    key: bytes
    """Ed25519 public key."""
    role: str
    """One of ``ROLES``."""


@dataclass(frozen=True, slots=True)
class Municipality:
    """A participating municipality and its keys."""

    name: str
    """Official name, e.g. ``"Montreuil"``."""
    siret: str
    """14-digit SIRET of the municipality (SCDL ``COLL_SIRET``)."""
    validator_key: bytes
    """Public key of its validator node."""
    members: tuple[Member, ...]
    """Keys enrolled at genesis (at least one admin)."""

    def to_value(self) -> list[Value]:
        return [
            self.name, self.siret, self.validator_key,
            [[m.key, m.role] for m in self.members],
        ]


@dataclass(frozen=True, slots=True)
class Genesis:
    """Content of the genesis file."""

    chain_id: str
    """Network id, lowercase ``[a-z0-9._-]``, at most 64 bytes; in every signature."""
    genesis_time_ms: int
    """Time of genesis (ms since epoch); block 1's time must be later."""
    municipalities: tuple[Municipality, ...]
    """Participating municipalities; their validator keys form the first validator set."""
    consensus: ConsensusParams = field(default_factory=ConsensusParams)
    """Consensus parameters."""
    approval_numerator: int = 2
    """Governance: a proposal passes with at least numerator/denominator of municipalities."""
    approval_denominator: int = 3
    """See ``approval_numerator``."""

    def to_value(self) -> list[Value]:
        return [
            self.chain_id, self.genesis_time_ms,
            [m.to_value() for m in self.municipalities],
            self.consensus.to_value(), self.approval_numerator, self.approval_denominator,
        ]

    @property
    def genesis_hash(self) -> bytes:
        return tagged_hash(Tag.GENESIS, encode(self.to_value()))

    @property
    def validator_set(self) -> ValidatorSet:
        return ValidatorSet.of([m.validator_key for m in self.municipalities])

    def to_json(self) -> dict[str, Any]:
        return {
            "chain_id": self.chain_id,
            "genesis_time_ms": self.genesis_time_ms,
            "consensus": {
                "checkpoint_interval": self.consensus.checkpoint_interval,
                "watermark_window": self.consensus.watermark_window,
                "block_txs_max": self.consensus.block_txs_max,
                "block_bytes_max": self.consensus.block_bytes_max,
                "view_timeout_ms": self.consensus.view_timeout_ms,
                "execution_lag": self.consensus.execution_lag,
            },
            "governance": {
                "approval_numerator": self.approval_numerator,
                "approval_denominator": self.approval_denominator,
            },
            "municipalities": [
                {
                    "name": m.name,
                    "siret": m.siret,
                    "validator_key": m.validator_key.hex(),
                    "members": [{"key": x.key.hex(), "role": x.role} for x in m.members],
                }
                for m in self.municipalities
            ],
        }

    def save(self, path: Path) -> None:
        Path(path).write_text(json.dumps(self.to_json(), indent=2, ensure_ascii=False) + "\n")


def _get(obj: dict[str, Any], key: str, kind: type, where: str) -> Any:
    if key not in obj:
        raise GenesisError(f"genesis: {where}.{key} is missing")
    value = obj[key]
    if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise GenesisError(f"genesis: {where}.{key} must be an integer")
    if not isinstance(value, kind):
        raise GenesisError(f"genesis: {where}.{key} must be a {kind.__name__}")
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:  # a lone surrogate from a "\ud800" JSON escape
            raise GenesisError(f"genesis: {where}.{key} is not valid Unicode text") from exc
    return value


def _key(text: Any, where: str) -> bytes:
    if not isinstance(text, str) or not re.fullmatch(r"[0-9a-f]{64}", text):
        raise GenesisError(f"genesis: {where} must be 64 lowercase hex digits (a public key)")
    return bytes.fromhex(text)


def genesis_from_json(obj: Any) -> Genesis:
    """Validate a parsed genesis document; raise ``GenesisError`` naming the bad field."""
    if not isinstance(obj, dict):
        raise GenesisError("genesis: the file must hold a JSON object")
    chain_id = _get(obj, "chain_id", str, "genesis")
    if not CHAIN_ID_RE.fullmatch(chain_id) or len(chain_id) > CHAIN_ID_BYTES_MAX:
        raise GenesisError("genesis: chain_id must be 1-64 characters of a-z 0-9 . _ -")
    time_ms = _get(obj, "genesis_time_ms", int, "genesis")
    if not 0 <= time_ms <= GENESIS_TIME_MS_MAX:
        raise GenesisError(
            "genesis: genesis_time_ms must be milliseconds since 1970 (0..2**63-1)"
        )
    c = _get(obj, "consensus", dict, "genesis")
    params = ConsensusParams(
        checkpoint_interval=_get(c, "checkpoint_interval", int, "consensus"),
        watermark_window=_get(c, "watermark_window", int, "consensus"),
        block_txs_max=_get(c, "block_txs_max", int, "consensus"),
        block_bytes_max=_get(c, "block_bytes_max", int, "consensus"),
        view_timeout_ms=_get(c, "view_timeout_ms", int, "consensus"),
        execution_lag=_get(c, "execution_lag", int, "consensus"),
    )
    if not 1 <= params.checkpoint_interval <= CHECKPOINT_INTERVAL_MAX:
        raise GenesisError(
            f"genesis: consensus.checkpoint_interval must be 1..{CHECKPOINT_INTERVAL_MAX}")
    if params.watermark_window % params.checkpoint_interval or params.watermark_window < (
        2 * params.checkpoint_interval
    ):
        raise GenesisError(
            "genesis: consensus.watermark_window must be a multiple of checkpoint_interval, "
            "at least twice it"
        )
    if (not 1 <= params.block_txs_max <= BLOCK_TXS_MAX_CEILING
            or not BLOCK_BYTES_MAX_FLOOR <= params.block_bytes_max <= BLOCK_BYTES_MAX_CEILING):
        raise GenesisError(
            f"genesis: block limits must be 1..{BLOCK_TXS_MAX_CEILING} txs and "
            f"{BLOCK_BYTES_MAX_FLOOR // 1024} KiB..{BLOCK_BYTES_MAX_CEILING >> 20} MiB")
    if not 1 <= params.execution_lag <= params.checkpoint_interval:
        raise GenesisError("genesis: consensus.execution_lag must be 1..checkpoint_interval")
    if not VIEW_TIMEOUT_MS_MIN <= params.view_timeout_ms <= VIEW_TIMEOUT_MS_MAX:
        raise GenesisError(f"genesis: consensus.view_timeout_ms must be "
                           f"{VIEW_TIMEOUT_MS_MIN}..{VIEW_TIMEOUT_MS_MAX}")
    g = _get(obj, "governance", dict, "genesis")
    num = _get(g, "approval_numerator", int, "governance")
    den = _get(g, "approval_denominator", int, "governance")
    if not 0 < num <= den <= APPROVAL_DENOMINATOR_MAX:
        raise GenesisError(
            "genesis: governance approval must be a fraction in (0, 1] with a denominator "
            f"of at most {APPROVAL_DENOMINATOR_MAX}"
        )
    raw = _get(obj, "municipalities", list, "genesis")
    if not 1 <= len(raw) <= MUNICIPALITIES_MAX:
        raise GenesisError(f"genesis: there must be 1 to {MUNICIPALITIES_MAX} municipalities")
    municipalities = []
    for i, m in enumerate(raw):
        where = f"municipalities[{i}]"
        if not isinstance(m, dict):
            raise GenesisError(f"genesis: {where} must be an object")
        name = _get(m, "name", str, where)
        if not 1 <= len(name.encode()) <= NAME_BYTES_MAX:
            raise GenesisError(f"genesis: {where}.name must be 1-{NAME_BYTES_MAX} bytes")
        siret = _get(m, "siret", str, where)
        problem = siret_problem(siret)
        if problem is not None:
            raise GenesisError(f"genesis: {where}.siret {problem}")
        members = []
        for j, x in enumerate(_get(m, "members", list, where)):
            if not isinstance(x, dict):
                raise GenesisError(f"genesis: {where}.members[{j}] must be an object")
            role = _get(x, "role", str, f"{where}.members[{j}]")
            if role not in ROLES:
                raise GenesisError(f"genesis: {where}.members[{j}].role must be one of {ROLES}")
            members.append(Member(_key(x.get("key"), f"{where}.members[{j}].key"), role))
        if not any(x.role == "admin" for x in members):
            raise GenesisError(f"genesis: {where} needs at least one admin member")
        municipalities.append(
            Municipality(name, siret, _key(m.get("validator_key"), f"{where}.validator_key"),
                         tuple(members))
        )
    sirets = [m.siret for m in municipalities]
    if len(set(sirets)) != len(sirets):
        raise GenesisError("genesis: two municipalities share a SIRET")
    validators = [m.validator_key for m in municipalities]
    if len(set(validators)) != len(validators):
        raise GenesisError("genesis: two municipalities share a validator key")
    all_keys = [x.key for m in municipalities for x in m.members]
    if len(set(all_keys)) != len(all_keys) or set(all_keys) & set(validators):
        raise GenesisError("genesis: a key is enrolled twice (keys must be distinct)")
    return Genesis(chain_id, time_ms, tuple(municipalities), params, num, den)


def load_genesis(path: Path) -> Genesis:
    """Read and validate a genesis file."""
    path = Path(path)
    text = read_text_bounded(path, GENESIS_FILE_BYTES_MAX, "genesis file", GenesisError)
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise GenesisError(f"{path} is not valid JSON: {exc}") from exc
    return genesis_from_json(obj)

