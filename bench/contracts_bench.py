"""Transactions applied per second, per contract, in memory.

Run: ``.venv/bin/python -m bench.contracts_bench [--txs 2000] [--block 100]``

Rules: prints figures, asserts nothing about time. For each contract a workload of
``--txs`` valid transactions is signed beforehand (signing is not measured), then applied
in blocks of ``--block`` through ``contracts.engine.execute_block`` over a ``DictState``.
Two figures per contract: execution alone (engine + applying the changes to the dict),
and execution plus the authenticated state root of every block
(``ledger.state.StateTree`` over a ``MemoryNodeStore``, one version per block, as a node
does). Signature verification is not included: it happens before execution
(``ledger.validation``), at about 18,000 verifications a second per core.
"""

from __future__ import annotations

import argparse
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench.execution import MemoryLedger
from contracts.engine import BlockEnv
from contracts.identity import MEMBERS_MAX
from contracts.social_aid import beneficiary_tag
from ledger.genesis import Genesis, Member, Municipality
from ledger.records import Transaction
from testkit.chainbuilder import key_for

CHAIN_ID = "tabellion-bench"
T0_MS = 1_767_225_600_000  # 2026-01-01
TOWNS = (("Montreuil", "21930048000015"), ("Bagnolet", "21930006800018"),
         ("Pantin", "21930055500014"))
ROLES = {"admin": "admin", "clerk": "clerk", "agent": "social_aid_agent"}


def genesis() -> Genesis:
    return Genesis(CHAIN_ID, T0_MS, tuple(
        Municipality(name, siret, key_for(f"{siret}.validator").public_key,
                     tuple(Member(key_for(f"{siret}.{who}").public_key, role)
                           for who, role in ROLES.items()))
        for name, siret in TOWNS))


@dataclass
class Workload:
    """Transactions to sign: a setup (not measured) and the measured ones."""

    setup: list[Transaction]
    measured: list[Transaction]


class Signer:
    def __init__(self) -> None:
        self.nonce = 0

    def __call__(self, who: str, contract: str, action: str, payload: dict[str, Any]
                 ) -> Transaction:
        self.nonce += 1
        k = key_for(who)
        return Transaction(CHAIN_ID, contract, action, payload, k.public_key, self.nonce,
                           T0_MS + 86_400_000).signed(k)


NAME, SIRET = TOWNS[0]
OTHER = TOWNS[1][1]


def identity(n: int, tx: Signer) -> Workload:
    # A town enrolls at most MEMBERS_MAX keys in its lifetime: spread over the towns.
    n = min(n, len(TOWNS) * (MEMBERS_MAX - len(ROLES)))
    return Workload([], [
        tx(f"{TOWNS[i % 3][1]}.admin", "identity", "enroll",
           {"siret": TOWNS[i % 3][1], "key": key_for(f"new{i}").public_key.hex(),
            "roles": ["clerk"]})
        for i in range(n)])


def governance(n: int, tx: Signer) -> Workload:
    measured = []
    for i in range(n // 2):
        propose = tx(f"{SIRET}.admin", "governance", "propose",
                     {"siret": SIRET, "kind": "set_parameter", "parameter": "block_txs_max",
                      "value": 1000 + i})
        measured += [propose, tx(f"{OTHER}.admin", "governance", "approve",
                                 {"siret": OTHER, "proposal_id": propose.tx_id.hex()})]
    return Workload([], measured)


def deliberations(n: int, tx: Signer) -> Workload:
    sittings = [tx(f"{SIRET}.clerk", "deliberations", "record_sitting",
                   {"COLL_SIRET": SIRET, "sitting_id": f"S{s}", "date": "2026-01-01",
                    "members_in_office": 49, "members_present": 30,
                    "second_convocation": False}) for s in range(n // 1000 + 1)]
    acts = [tx(f"{SIRET}.clerk", "deliberations", "record", {
        "COLL_NOM": NAME, "COLL_SIRET": SIRET, "DELIB_ID": f"DEL-{i:06d}",
        "DELIB_DATE": "2026-01-01", "DELIB_MATIERE_CODE": "7.1",
        "DELIB_MATIERE_NOM": "Décisions budgétaires", "DELIB_OBJET": f"Objet {i}",
        "VOTE_EFFECTIF": 49, "VOTE_REEL": 30, "VOTE_POUR": 20, "VOTE_CONTRE": 8,
        "VOTE_ABSTENTION": 2, "act_sha256": hashlib.sha256(b"%d" % i).hexdigest(),
        "sitting_id": f"S{i // 1000}", "order_number": 1 + i % 1000,
        "members_present": 30}) for i in range(n)]
    return Workload(sittings, acts)


def social_aid(n: int, tx: Signer) -> Workload:
    terms = {"budget_cents": 10**12, "ceiling_cents": 50_000,
             "four_eyes_threshold_cents": 50_000}
    sitting = tx(f"{SIRET}.clerk", "deliberations", "record_sitting", {
        "COLL_SIRET": SIRET, "sitting_id": "S-AID", "date": "2026-01-01",
        "members_in_office": 49, "members_present": 30, "second_convocation": False})
    decision = tx(f"{SIRET}.clerk", "deliberations", "record", {
        "COLL_NOM": NAME, "COLL_SIRET": SIRET, "DELIB_ID": "DEL-1", "DELIB_DATE": "2026-01-01",
        "DELIB_MATIERE_CODE": "8.2", "DELIB_MATIERE_NOM": "Aide sociale",
        "DELIB_OBJET": "Aide énergie", "VOTE_EFFECTIF": 49, "VOTE_REEL": 30, "VOTE_POUR": 20,
        "VOTE_CONTRE": 8, "VOTE_ABSTENTION": 2, "act_sha256": "00" * 32,
        "sitting_id": "S-AID", "order_number": 1, "members_present": 30,
        **{f"aid_{name}": value for name, value in terms.items()}})
    scheme = tx(f"{SIRET}.admin", "social_aid", "create_scheme", {
        "siret": SIRET, "scheme_id": "energie", "name": "Aide énergie",
        "period_start": "2026-01", "period_end": "2026-12", "decision_ref": "DEL-1", **terms})
    tag_key = b"bench-tag-key-0123456789"
    return Workload([sitting, decision, scheme], [
        tx(f"{SIRET}.agent", "social_aid", "disburse",
           {"siret": SIRET, "scheme_id": "energie", "period": "2026-01",
            "amount_cents": 10_000, "beneficiary": beneficiary_tag(tag_key, f"C{i}")})
        for i in range(n)])


def reports(n: int, tx: Signer) -> Workload:
    return Workload([], [
        tx(f"{SIRET}.clerk", "reports", "submit",
           {"siret": SIRET, "service_code": "streetlight", "description": f"Panne {i}",
            "lat": 48_861_500 + 100 * i, "long": 2_443_300})
        for i in range(n)])


def notary(n: int, tx: Signer) -> Workload:
    return Workload([], [
        tx(f"{SIRET}.clerk", "notary", "anchor",
           {"siret": SIRET, "sha256": hashlib.sha256(b"doc %d" % i).hexdigest(),
            "document_type": "arrete", "reference": f"ARR-{i}"})
        for i in range(n)])


WORKLOADS: dict[str, Callable[[int, Signer], Workload]] = {
    "identity": identity, "governance": governance, "deliberations": deliberations,
    "social_aid": social_aid, "reports": reports, "notary": notary,
}


@dataclass
class Timing:
    exec_s: float = 0.0
    """Engine plus applying changes to the DictState."""
    root_s: float = 0.0
    """StateTree.apply of the block's changes (the state root)."""
    keys_written: int = 0


def run(workload: Workload, block_txs: int) -> Timing:
    """Apply the setup, then time the measured transactions block by block."""
    ledger = MemoryLedger(genesis())
    height = 0
    timing = Timing()

    def block(txs: list[Transaction], measure: bool) -> None:
        nonlocal height
        height += 1
        env = BlockEnv(CHAIN_ID, height, T0_MS + height * 1000, key_for("proposer").public_key)
        done = ledger.execute(env, txs)
        if measure:
            timing.exec_s += done.exec_s
            timing.root_s += done.root_s
            timing.keys_written += len(done.result.changes)

    for start in range(0, len(workload.setup), block_txs):
        block(workload.setup[start:start + block_txs], measure=False)
    for start in range(0, len(workload.measured), block_txs):
        block(workload.measured[start:start + block_txs], measure=True)
    return timing


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--txs", type=int, default=2000, help="transactions per contract")
    parser.add_argument("--block", type=int, default=100, help="transactions per block")
    args = parser.parse_args()
    print(f"{args.txs} transactions per contract, blocks of {args.block}, in memory")
    print(f"{'contract':<14} {'tx/s exec':>10} {'tx/s +root':>11} {'keys/tx':>8} "
          f"{'µs/key root':>12}")
    print("(tx/s exec: engine + dict; +root: also the state root of every block; keys/tx:")
    print(" state keys written per transaction, replay guard included; µs/key root: state")
    print(" root update time per key written)")
    for name, build in WORKLOADS.items():
        workload = build(args.txs, Signer())
        n = len(workload.measured)
        t = run(workload, args.block)
        print(f"{name:<14} {n / t.exec_s:>10,.0f} {n / (t.exec_s + t.root_s):>11,.0f} "
              f"{t.keys_written / n:>8.1f} {t.root_s / t.keys_written * 1e6:>12.1f}")

if __name__ == "__main__":
    main()
