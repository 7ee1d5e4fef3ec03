"""What a test chain holds, built with ``testkit.chainbuilder``: the audit tests' and the
audit benchmark's material.

Rules:
- ``populate`` uses every record type, and changes the validator set by governance on
  the way (a fifth municipality is added, one of the first four removed), so audits and
  receipts cross validator-set changes; ``populate_bulk`` is the benchmark's steady load.
- Every transaction is valid when it is made: the tests expect only ``ok`` receipts.
- Deterministic: the same arguments give the same chain, byte for byte.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from contracts.social_aid import beneficiary_tag
from ledger.hashing import sha256
from ledger.records import CommittedBlock, Transaction
from testkit.chainbuilder import (
    NEW_TOWN,
    REMOVED_TOWN,
    TOWNS,
    ChainBuilder,
    DiskWriter,
    Network,
    key_for,
    make_network,
)

TAG_KEY = b"social-service-secret-key-montreuil"


def _siret(town: tuple[str, str]) -> str:
    return town[1]


def populate(builder: ChainBuilder, blocks: int) -> None:
    """Fill ``builder`` with ``blocks`` blocks using every record type, with a governance
    addition (a fifth town) and a removal (Pantin) of a validator on the way."""
    b = builder
    first = [_siret(t) for t in TOWNS]
    new = _siret(NEW_TOWN)
    # Enrollment: a second social-aid agent in every town (four eyes).
    b.add_block([
        b.tx(f"admin:{s}", "identity", "enroll",
             {"siret": s, "key": key_for(f"agent2:{s}").public_key.hex(),
              "roles": ["social_aid_agent"]})
        for s in first
    ])
    # The council decides the aid scheme (ACTES 8.2) and its terms; the admin creates it
    # (transactions of a block run in order, so one block holds all three steps).
    terms = {"budget_cents": 10_000_000, "ceiling_cents": 50_000,
             "four_eyes_threshold_cents": 30_000}
    b.add_block([
        b.tx(f"clerk:{s}", "deliberations", "record_sitting",
             {"COLL_SIRET": s, "sitting_id": "CM-2026-11", "date": "2026-11-18",
              "members_in_office": 15, "members_present": 14, "second_convocation": False})
        for s in first
    ] + [
        b.tx(f"clerk:{s}", "deliberations", "record", {
            "COLL_NOM": dict((s2, t) for t, s2 in TOWNS)[s], "COLL_SIRET": s,
            "DELIB_ID": "2026-AID", "DELIB_DATE": "2026-11-18", "DELIB_MATIERE_CODE": "8.2",
            "DELIB_MATIERE_NOM": "Aide sociale", "DELIB_OBJET": "Création de l'aide énergie",
            "VOTE_EFFECTIF": 15, "VOTE_REEL": 14, "VOTE_POUR": 12, "VOTE_CONTRE": 2,
            "VOTE_ABSTENTION": 0, "act_sha256": sha256(b"aid act").hex(),
            "sitting_id": "CM-2026-11", "order_number": 999, "members_present": 14,
            **{f"aid_{name}": value for name, value in terms.items()}})
        for s in first
    ] + [
        b.tx(f"admin:{s}", "social_aid", "create_scheme",
             {"siret": s, "scheme_id": "energie-2026", "name": "Aide énergie 2026",
              "period_start": "2026-11", "period_end": "2027-03", "decision_ref": "2026-AID",
              **terms})
        for s in first
    ])
    # Governance: Montreuil proposes to add Romainville; Bagnolet and Vincennes approve.
    propose_add = b.tx(f"admin:{first[0]}", "governance", "propose", {
        "siret": first[0], "kind": "add_municipality", "municipality_name": NEW_TOWN[0],
        "municipality_siret": new, "validator_key": key_for(f"validator:{new}").public_key.hex(),
        "admin_key": key_for(f"admin:{new}").public_key.hex(), "reason": "joins the network"})
    b.add_block([propose_add])
    b.add_block([
        b.tx(f"admin:{s}", "governance", "approve",
             {"siret": s, "proposal_id": propose_add.tx_id.hex()})
        for s in first[1:3]
    ])
    removal_at = max(blocks // 3, b.height + 30)
    n = 0
    while b.height < blocks:
        n += 1
        h = b.height + 1
        if h == removal_at:
            _remove_pantin(b, first, new)
            continue
        town = first[n % 3]  # Pantin stops writing: it is about to leave
        b.add_block(_records(b, town, n))


def _remove_pantin(b: ChainBuilder, first: list[str], new: str) -> None:
    gone = _siret(REMOVED_TOWN)
    propose = b.tx(f"admin:{first[0]}", "governance", "propose", {
        "siret": first[0], "kind": "remove_municipality", "municipality_siret": gone,
        "reason": "leaves the network"})
    b.add_block([propose])
    b.add_block([
        b.tx(f"admin:{s}", "governance", "approve",
             {"siret": s, "proposal_id": propose.tx_id.hex()})
        for s in (first[1], first[2], new)
    ])


def _records(b: ChainBuilder, siret: str, n: int) -> list[Transaction]:
    """A few records of every kind, varying with ``n``."""
    kind = n % 5
    if kind == 0:
        return [b.tx(f"clerk:{siret}", "deliberations", "record", {
            "COLL_NOM": dict((s, t) for t, s in TOWNS)[siret], "COLL_SIRET": siret,
            "DELIB_ID": f"2026-{n:03d}", "DELIB_DATE": "2026-11-18",
            "DELIB_MATIERE_CODE": "7.1", "DELIB_MATIERE_NOM": "Décisions budgétaires",
            "DELIB_OBJET": f"Budget supplémentaire n°{n}", "VOTE_EFFECTIF": 15,
            "VOTE_REEL": 14, "VOTE_POUR": 12, "VOTE_CONTRE": 2, "VOTE_ABSTENTION": 0,
            "act_sha256": sha256(f"act {n}".encode()).hex(), "sitting_id": "CM-2026-11",
            "order_number": n, "members_present": 14}),
            b.tx(f"clerk:{siret}", "notary", "anchor", {
                "siret": siret, "sha256": sha256(f"minutes {n}".encode()).hex(),
                "document_type": "proces_verbal", "reference": f"PV-2026-{n:03d}"})]
    if kind == 1:
        tag = beneficiary_tag(TAG_KEY, f"CASE-{n:05d}")
        return [b.tx(f"agent:{siret}", "social_aid", "disburse", {
            "siret": siret, "scheme_id": "energie-2026", "period": "2026-11",
            "beneficiary": tag, "amount_cents": 12_000 + n})]
    if kind == 2:
        return [b.tx(f"clerk:{siret}", "reports", "submit", {
            "siret": siret, "service_code": "streetlight",
            "description": f"Lampadaire éteint n°{n}", "lat": 48_861_000 + 100 * n,
            "long": 2_443_000 + 100 * n})]
    if kind == 3:
        return [b.tx(f"clerk:{siret}", "notary", "anchor", {
            "siret": siret, "sha256": sha256(f"arrete {n}".encode()).hex(),
            "document_type": "arrete", "reference": f"ARR-2026-{n:03d}"})]
    # An empty block now and then: networks commit them too.
    return []


def build_chain(blocks: int = 240, *, on_commit: Callable[
        [CommittedBlock, dict[bytes, bytes | None]], None] | None = None,
        net: Network | None = None) -> ChainBuilder:
    builder = ChainBuilder(net or make_network(), on_commit)
    populate(builder, blocks)
    return builder


def populate_bulk(builder: ChainBuilder, txs: int, block_txs: int) -> None:
    """Add about ``txs`` transactions in blocks of ``block_txs``: notarised documents and
    citizen reports from the clerks of the first three towns (the bench's load)."""
    sirets = [_siret(t) for t in TOWNS[:3]]
    made = 0
    while made < txs:
        batch = []
        for i in range(min(block_txs, txs - made)):
            n = made + i
            siret = sirets[n % 3]
            if n % 4 == 3:
                batch.append(builder.tx(f"clerk:{siret}", "reports", "submit", {
                    "siret": siret, "service_code": "pothole",
                    "description": f"Nid-de-poule n°{n}", "lat": 48_850_000 + n % 10_000,
                    "long": 2_440_000 + n % 10_000}))
            else:
                batch.append(builder.tx(f"clerk:{siret}", "notary", "anchor", {
                    "siret": siret, "sha256": sha256(f"bulk {n}".encode()).hex(),
                    "document_type": "arrete", "reference": f"ARR-{n:07d}"}))
        builder.add_block(batch)
        made += len(batch)


def build_on_disk(paths: list[Path], blocks: int, net: Network | None = None) -> ChainBuilder:
    """Build a chain of ``blocks`` blocks and write it into every directory of ``paths``
    (as several nodes of one network would hold it)."""
    net = net or make_network()
    writers = [DiskWriter(p, net.genesis) for p in paths]

    def commit(committed: CommittedBlock, changes: dict[bytes, bytes | None]) -> None:
        for w in writers:
            w(committed, changes)

    try:
        return build_chain(blocks, on_commit=commit, net=net)
    finally:
        for w in writers:
            w.close()
