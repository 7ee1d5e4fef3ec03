"""A small deterministic world for contract tests, vectors and examples.

Four municipalities, each with an admin, a clerk, two social-aid agents and an auditor;
keys derived from names, so every signature (Ed25519 is deterministic) and every state
root is the same on every run. ``Chain`` executes blocks over a ``DictState``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from contracts.engine import (
    BlockEnv,
    BlockResult,
    DictState,
    RecentCommits,
    execute_block,
    genesis_changes,
)
from ledger.crypto import SigningKey
from ledger.genesis import Genesis, Member, Municipality
from ledger.records import Receipt, Transaction
from ledger.state import compute_root
from testkit.chainbuilder import key_for

CHAIN_ID = "tabellion-test"
GENESIS_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
BLOCK_MS = 60_000
EXPIRY_MS = 24 * 3600 * 1000
TOWNS = {
    "montreuil": ("Montreuil", "21930048000015"),
    "bagnolet": ("Bagnolet", "21930006800018"),
    "pantin": ("Pantin", "21930055500014"),
    "vincennes": ("Vincennes", "21940080200019"),
}
PEOPLE = {"admin": "admin", "clerk": "clerk", "agent": "social_aid_agent",
          "agent2": "social_aid_agent", "auditor": "auditor"}


def key(name: str) -> SigningKey:
    """The test key called ``name`` (e.g. ``montreuil.clerk``)."""
    return key_for(name)


def pub(name: str) -> str:
    return key(name).public_key.hex()


def siret(town: str) -> str:
    return TOWNS[town][1]


def name_of(town: str) -> str:
    return TOWNS[town][0]


def make_genesis(towns: Sequence[str] = tuple(TOWNS)) -> Genesis:
    return Genesis(
        chain_id=CHAIN_ID,
        genesis_time_ms=GENESIS_MS,
        municipalities=tuple(
            Municipality(
                name_of(t), siret(t), key(f"{t}.validator").public_key,
                tuple(Member(key(f"{t}.{who}").public_key, role) for who, role in PEOPLE.items()),
            )
            for t in towns
        ),
    )


def state_root(items: Mapping[bytes, bytes]) -> bytes:
    """The authenticated state root of ``items`` (``ledger.state``, ADR 0006): the one
    place tests, vectors and the generator compute roots."""
    return compute_root(items)


@dataclass
class Chain:
    """A chain in memory: genesis state, then blocks of transactions."""

    genesis: Genesis = field(default_factory=make_genesis)
    state: DictState = field(default_factory=DictState)
    recent: RecentCommits = field(default_factory=RecentCommits)
    """The ids of the executed blocks that may still be valid (the replay guard)."""
    height: int = 0
    time_ms: int = GENESIS_MS
    nonce: int = 0
    results: list[BlockResult] = field(default_factory=list)
    log: list[tuple[BlockEnv, tuple[Transaction, ...]]] = field(default_factory=list)
    """Every block executed: its environment and transactions (for vectors and replay)."""

    def __post_init__(self) -> None:
        self.state.apply(genesis_changes(self.genesis))

    def tx(self, signer: str, contract: str, action: str, payload: Mapping[str, Any],
           nonce: int | None = None) -> Transaction:
        if nonce is None:
            self.nonce += 1
            nonce = self.nonce
        k = key(signer)
        return Transaction(CHAIN_ID, contract, action, dict(payload), k.public_key, nonce,
                           self.time_ms + EXPIRY_MS).signed(k)

    def env(self) -> BlockEnv:
        return BlockEnv(CHAIN_ID, self.height + 1, self.time_ms + BLOCK_MS,
                        key("montreuil.validator").public_key)

    def block(self, *txs: Transaction) -> tuple[Receipt, ...]:
        env = self.env()
        result = execute_block(self.state, env, txs, self.recent)
        self.recent.record(env.time_ms, txs)
        self.state.apply(result.changes)
        self.height, self.time_ms = env.height, env.time_ms
        self.results.append(result)
        self.log.append((env, txs))
        return result.receipts

    def run(self, tx: Transaction) -> Receipt:
        (receipt,) = self.block(tx)
        return receipt

    def do(self, signer: str, contract: str, action: str, payload: Mapping[str, Any]
           ) -> Receipt:
        return self.run(self.tx(signer, contract, action, payload))

    def root(self) -> bytes:
        return state_root(self.state.items())


# ---------------------------------------------------------------- payload builders
ACT_SHA = hashlib.sha256(b"deliberation act").hexdigest()


def sitting(town: str = "montreuil", sitting_id: str = "CM-2026-03-12", *,
            date: str = "2026-01-01", in_office: int = 49, present: int = 30,
            second: bool = False, first: str | None = None) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "COLL_SIRET": siret(town), "sitting_id": sitting_id, "date": date,
        "members_in_office": in_office, "members_present": present,
        "second_convocation": second}
    if first is not None:
        payload["first_sitting_id"] = first
    return payload


def act(town: str = "montreuil", delib_id: str = "DEL-2026-001", *,
        sitting_id: str = "CM-2026-03-12", date: str = "2026-01-01", order: int = 1,
        votes: tuple[int, int, int, int, int] | None = (49, 30, 20, 8, 2),
        present: int = 30, **extra: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "COLL_NOM": name_of(town), "COLL_SIRET": siret(town), "DELIB_ID": delib_id,
        "DELIB_DATE": date, "DELIB_MATIERE_CODE": "7.1",
        "DELIB_MATIERE_NOM": "Décisions budgétaires",
        "DELIB_OBJET": "Budget primitif 2026", "act_sha256": ACT_SHA,
        "sitting_id": sitting_id, "order_number": order, "members_present": present,
    }
    if votes is not None:
        for name, value in zip(("VOTE_EFFECTIF", "VOTE_REEL", "VOTE_POUR", "VOTE_CONTRE",
                                "VOTE_ABSTENTION"), votes, strict=True):
            payload[name] = value
    payload.update(extra)
    return payload


def scheme(town: str = "montreuil", scheme_id: str = "energie-2026", *,
           budget: int = 1_000_000, ceiling: int = 30_000, threshold: int = 20_000,
           start: str = "2026-01", end: str = "2026-12") -> dict[str, Any]:
    return {"siret": siret(town), "scheme_id": scheme_id, "name": "Aide énergie 2026",
            "budget_cents": budget, "period_start": start, "period_end": end,
            "ceiling_cents": ceiling, "decision_ref": f"AID-{scheme_id}",
            "four_eyes_threshold_cents": threshold}


Step = tuple[str, str, str, dict[str, Any]]


def scheme_steps(town: str = "montreuil", scheme_id: str = "energie-2026", **terms: Any
                 ) -> list[Step]:
    """What creating a scheme takes: the council's sitting, its adopted deliberation
    (ACTES 8.2, with the scheme's budget, ceiling and threshold), then the admin's
    ``create_scheme`` referencing it."""
    terms_payload = scheme(town, scheme_id, **terms)
    sitting_id = f"CM-AID-{scheme_id}"
    decision = act(town, terms_payload["decision_ref"], sitting_id=sitting_id,
                   DELIB_MATIERE_CODE="8.2", DELIB_MATIERE_NOM="Aide sociale",
                   DELIB_OBJET=f"Création du dispositif {terms_payload['name']}",
                   aid_budget_cents=terms_payload["budget_cents"],
                   aid_ceiling_cents=terms_payload["ceiling_cents"],
                   aid_four_eyes_threshold_cents=terms_payload["four_eyes_threshold_cents"])
    return [(f"{town}.clerk", "deliberations", "record_sitting",
             sitting(town, sitting_id)),
            (f"{town}.clerk", "deliberations", "record", decision),
            (f"{town}.admin", "social_aid", "create_scheme", terms_payload)]


def open_scheme(chain: Chain, town: str = "montreuil", scheme_id: str = "energie-2026",
                **terms: Any) -> Receipt:
    """Run ``scheme_steps`` on ``chain``; the setup must succeed; returns the receipt of
    ``create_scheme``."""
    receipts = [chain.do(*step) for step in scheme_steps(town, scheme_id, **terms)]
    assert all(r.ok for r in receipts[:-1]), [r.message for r in receipts]
    return receipts[-1]


def tag(n: int) -> str:
    """A beneficiary tag as the CLI would compute it (fixed test key)."""
    from contracts.social_aid import beneficiary_tag

    return beneficiary_tag(b"test-tag-key-0123456789abcdef", f"CASE-{n:05d}")


def disbursement(town: str = "montreuil", n: int = 1, amount: int = 10_000, *,
                 period: str = "2026-01", scheme_id: str = "energie-2026") -> dict[str, Any]:
    return {"siret": siret(town), "scheme_id": scheme_id, "period": period,
            "amount_cents": amount, "beneficiary": tag(n)}


def report(town: str = "montreuil", **extra: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "siret": siret(town), "service_code": "streetlight",
        "description": "Lampadaire éteint rue de Paris, face à l'école",
        "lat": 48_861_500, "long": 2_443_300,
    }
    payload.update(extra)
    return payload


def anchor(town: str = "montreuil", document: bytes = b"arrete 42", **extra: Any
           ) -> dict[str, Any]:
    payload: dict[str, Any] = {"siret": siret(town), "sha256": hashlib.sha256(document).hexdigest(),
                               "document_type": "arrete", "reference": "ARR-2026-042"}
    payload.update(extra)
    return payload


# ---------------------------------------------------------------- metering
HALF_HOUR_MS = 30 * 60_000


def enroll_gateway(town: str = "montreuil") -> tuple[str, str, str, dict[str, Any]]:
    """The step enrolling ``<town>.gateway`` with the meter_gateway role (an admin's)."""
    return (f"{town}.admin", "identity", "enroll",
            {"siret": siret(town), "key": pub(f"{town}.gateway"), "roles": ["meter_gateway"]})


def meter(meter_id: str = "PRM-0001", kind: str = "electricity", *, town: str = "montreuil",
          building: str = "ecole-jaures", minutes: int = 30, **extra: Any) -> dict[str, Any]:
    """An enroll_meter payload with the fields its kind requires."""
    payload: dict[str, Any] = {
        "siret": siret(town), "meter_id": meter_id, "building": building, "kind": kind,
        "unit": "L" if kind == "water" else "Wh", "interval_minutes": minutes,
    }
    if kind == "electricity":
        payload["subscribed_power_w"] = 36_000
    if kind == "water":
        payload["leak_threshold_l_per_h"] = 20
        payload["leak_nights"] = 3
    payload.update(extra)
    return payload


def interval(day: str, hour: int = 0, minute: int = 0, minutes: int = 30) -> int:
    """Number of the interval starting at ``day`` ``hour``:``minute`` UTC."""
    from datetime import date

    days = (date.fromisoformat(day) - date(1970, 1, 1)).days
    return (days * 1440 + hour * 60 + minute) // minutes


def readings(*series: tuple[str, int, list[int]], unit: str = "Wh",
             town: str = "montreuil") -> dict[str, Any]:
    """A file_readings payload from (meter id, first interval, indexes) triples."""
    return {"siret": siret(town), "unit": unit, "meters": [m for m, _, _ in series],
            "first_intervals": [f for _, f, _ in series],
            "counts": [len(v) for _, _, v in series],
            "indexes": [x for _, _, v in series for x in v]}


def cumulative(start: int, steps: list[int]) -> list[int]:
    """Cumulative indexes from a start index and per-interval consumptions."""
    out, total = [], start
    for step in steps:
        total += step
        out.append(total)
    return out
