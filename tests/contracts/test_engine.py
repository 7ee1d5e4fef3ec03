"""The engine: overlays, replay guard, admission, genesis, and determinism."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contracts import registry
from contracts.engine import (
    REGISTRY,
    BlockEnv,
    BlockExecution,
    DictState,
    Overlay,
    check_admissible,
    check_schema,
    execute_block,
    genesis_changes,
    validator_set,
)
from contracts.registry import Registry, Rejection
from ledger.errors import InvalidTransaction
from ledger.records import MESSAGE_BYTES_MAX, Receipt, Transaction
from ledger.validation import check_transaction
from tests.vectors.contracts.scenario import (
    BLOCK_MS,
    Chain,
    act,
    anchor,
    disbursement,
    make_genesis,
    pub,
    report,
    scheme,
    scheme_steps,
    siret,
    sitting,
)


def test_overlays_buffer_writes_and_nest() -> None:
    base = DictState({b"a": b"1", b"b": b"2"})
    outer = Overlay(base)
    outer.put(b"c", b"3")
    inner = Overlay(outer)
    inner.delete(b"a")
    inner.put(b"b", b"9")
    assert (inner.get(b"a"), inner.get(b"b"), inner.get(b"c")) == (None, b"9", b"3")
    assert (outer.get(b"a"), outer.get(b"b")) == (b"1", b"2")
    outer.merge(inner.changes())
    assert outer.changes() == {b"a": None, b"b": b"9", b"c": b"3"}
    assert list(outer.changes()) == sorted(outer.changes())
    assert base.items() == {b"a": b"1", b"b": b"2"}


def test_genesis_state_holds_validators_and_members() -> None:
    genesis = make_genesis()
    state = DictState()
    state.apply(genesis_changes(genesis))
    assert validator_set(state) == genesis.validator_set
    assert genesis_changes(genesis) == genesis_changes(make_genesis())
    assert all(v is not None for v in genesis_changes(genesis).values())


def test_a_committed_id_is_refused_and_a_failed_one_is_consumed() -> None:
    chain = Chain()
    good = chain.tx("montreuil.clerk", "notary", "anchor", anchor())
    assert chain.run(good).ok
    replay = chain.run(good)
    assert replay.code == "already_committed"
    assert replay.message.endswith("was already committed; a signed transaction is "
                                   "recorded once")
    bad = chain.tx("montreuil.clerk", "notary", "anchor", anchor(document=b"x", siret="1"))
    assert chain.run(bad).code == "invalid_payload"
    assert chain.run(bad).code == "already_committed"


def test_a_refused_transaction_leaves_the_state_untouched() -> None:
    chain = Chain()
    before = chain.state.items()
    tx = chain.tx("montreuil.clerk", "deliberations", "record", act())  # no sitting yet
    assert chain.run(tx).code == "unknown_sitting"
    assert chain.state.items() == before
    assert chain.run(tx).code == "already_committed"  # its id is consumed all the same


def test_the_replay_guard_writes_nothing_to_the_state() -> None:
    """Guards live in the chain, not in the authenticated state: a block writes only what
    its contracts write (one key per anchored document here), and no later block has
    guards to prune."""
    chain = Chain()
    txs = [chain.tx("montreuil.clerk", "notary", "anchor", anchor(document=b"%d" % i))
           for i in range(50)]
    before = chain.state.items()
    assert all(r.ok for r in chain.block(*txs))
    added = set(chain.state.items()) - set(before)
    assert len(added) == len(txs)
    assert chain.results[-1].changes.keys() == added
    chain.time_ms = txs[0].expiry_ms + BLOCK_MS  # every one of them has expired
    chain.block()
    assert chain.results[-1].changes == {}


def test_recent_commits_forget_ids_once_no_valid_block_can_hold_them() -> None:
    """A replay from genesis remembers ids only while their transactions are valid, so its
    memory follows the traffic of the expiry horizon, not the length of the chain; a
    forgotten id can come back only expired, which validation refuses before execution."""
    chain = Chain()
    early = chain.tx("montreuil.clerk", "notary", "anchor", anchor())
    chain.time_ms += 3_600_000
    late = chain.tx("montreuil.clerk", "notary", "anchor", anchor(document=b"later"))
    chain.block(early, late)
    assert len(chain.recent) == 2
    chain.time_ms = early.expiry_ms - 2 * BLOCK_MS
    assert chain.run(early).code == "already_committed"  # still valid: still remembered
    assert chain.recent(early.tx_id) and chain.recent(late.tx_id)
    chain.time_ms = early.expiry_ms  # the next block is after early's expiry
    chain.block()
    assert not chain.recent(early.tx_id) and chain.recent(late.tx_id)
    assert len(chain.recent) == 1
    with pytest.raises(InvalidTransaction, match="expired"):
        check_transaction(early, chain.genesis.chain_id, chain.env().time_ms)
    chain.time_ms = late.expiry_ms
    chain.block()
    assert len(chain.recent) == 0


def test_the_guard_asks_the_chain_about_earlier_blocks_only() -> None:
    """``committed_before`` answers for blocks below the executing one; ids of the block
    itself are the engine's (a second occurrence is refused)."""
    chain = Chain()
    tx = chain.tx("montreuil.clerk", "notary", "anchor", anchor())
    other = chain.tx("montreuil.clerk", "notary", "anchor", anchor(document=b"other"))
    asked: list[bytes] = []

    def committed_before(tx_id: bytes) -> bool:
        asked.append(tx_id)
        return tx_id == other.tx_id

    result = execute_block(chain.state, chain.env(), [tx, other, tx], committed_before)
    assert [r.code for r in result.receipts] == ["ok", "already_committed",
                                                 "already_committed"]
    assert asked == [tx.tx_id, other.tx_id]


def test_the_same_transaction_twice_in_one_block_commits_once() -> None:
    chain = Chain()
    tx = chain.tx("montreuil.clerk", "notary", "anchor", anchor())
    assert [r.code for r in chain.block(tx, tx)] == ["ok", "already_committed"]


def test_execution_leaves_its_input_state_untouched() -> None:
    chain = Chain()
    before = chain.state.items()
    result = execute_block(chain.state, chain.env(),
                           [chain.tx("montreuil.clerk", "notary", "anchor", anchor())],
                           chain.recent)
    assert result.receipts[0].ok and result.changes
    assert chain.state.items() == before


def test_unknown_contract_action_and_signer() -> None:
    chain = Chain()
    r1 = chain.do("montreuil.clerk", "budget", "vote", {})
    assert (r1.code, r1.message) == (
        "unknown_contract", "there is no contract 'budget' (contracts: identity, governance, "
        "deliberations, social_aid, reports, notary, metering)")
    r2 = chain.do("montreuil.clerk", "notary", "erase", {})
    assert (r2.code, r2.message) == (
        "unknown_action", "the contract notary has no action 'erase' (it has: anchor)")
    r3 = chain.do("stranger", "notary", "anchor", anchor())
    assert r3.code == "unknown_signer"
    assert r3.message.endswith("is not enrolled in any municipality; ask an administrator "
                               "of your municipality to enroll it")


def test_check_admissible_refuses_cheaply_without_writing() -> None:
    chain = Chain()
    ok = chain.tx("montreuil.clerk", "notary", "anchor", anchor())
    assert check_admissible(chain.state, ok, chain.time_ms) is None
    cases = {
        "unknown_signer": chain.tx("stranger", "notary", "anchor", anchor()),
        "unknown_action": chain.tx("montreuil.clerk", "notary", "erase", {}),
        "invalid_payload": chain.tx("montreuil.clerk", "notary", "anchor", {"siret": "x"}),
        "not_permitted": chain.tx("montreuil.auditor", "notary", "anchor", anchor()),
        "wrong_municipality": chain.tx("pantin.clerk", "notary", "anchor", anchor()),
    }
    before = chain.state.items()
    for code, tx in cases.items():
        refusal = check_admissible(chain.state, tx, chain.time_ms)
        assert refusal is not None and refusal.code == code and refusal.tx_id == tx.tx_id
    assert chain.state.items() == before
    chain.run(ok)
    chain.do("montreuil.admin", "identity", "revoke",
             {"siret": siret("montreuil"), "key": pub("montreuil.clerk")})
    late = chain.tx("montreuil.clerk", "notary", "anchor", anchor(document=b"later"))
    refusal = check_admissible(chain.state, late, chain.time_ms)
    assert refusal is not None and refusal.code == "signer_revoked"


def test_a_schema_pass_is_checked_once_and_a_refusal_every_time(
        monkeypatch: pytest.MonkeyPatch) -> None:
    chain = Chain()
    checked: list[bytes] = []
    real = registry.check_payload

    def counting(fields: Any, payload: Any, where: str) -> None:
        checked.append(payload.get("sha256", b""))
        real(fields, payload, where)

    monkeypatch.setattr(registry, "check_payload", counting)
    monkeypatch.setattr(registry, "SCHEMA_PASSES_MAX", 2)
    fresh = Registry(REGISTRY.contracts)
    docs = [chain.tx("montreuil.clerk", "notary", "anchor", anchor(document=b"%d" % i))
            for i in range(3)]
    bad = chain.tx("montreuil.clerk", "notary", "anchor", {**anchor(), "name": "Jean"})
    for _ in range(2):
        fresh.check_schema(docs[0])
        with pytest.raises(Rejection, match=r"the field name is not part of notary\.anchor"):
            fresh.check_schema(bad)
    assert len(checked) == 3  # docs[0] once, the refused one both times
    fresh.check_schema(docs[1])
    fresh.check_schema(docs[2])  # the memo holds 2: docs[0] is forgotten, checked again
    fresh.check_schema(docs[0])
    assert len(checked) == 6
    # The answers are those of a registry that remembers nothing.
    refusal = check_schema(bad)
    assert refusal is not None and refusal.code == "invalid_payload"
    assert all(check_schema(tx) is None for tx in docs)


# ---------------------------------------------------------------- determinism
PEOPLE = ["montreuil.admin", "montreuil.clerk", "montreuil.agent", "montreuil.agent2",
          "montreuil.auditor", "pantin.admin", "pantin.clerk", "stranger"]


NATURAL = ["montreuil.clerk", "montreuil.clerk", "montreuil.admin", "montreuil.agent",
           "montreuil.agent2", "montreuil.clerk", "montreuil.clerk", "montreuil.admin",
           "montreuil.admin"]
"""The signer each template below is meant for (others get a random signer)."""


def _op(kind: int, a: int, b: int) -> tuple[str, str, dict[str, Any]]:
    """One transaction template per kind; ``a`` and ``b`` vary it into valid and invalid."""
    ids = ["S1", "S2", "S3"]
    if kind == 0:
        return "deliberations", "record_sitting", sitting(sitting_id=ids[a % 3],
                                                          present=(a * 7 + b) % 50)
    if kind == 1:
        return "deliberations", "record", act(delib_id=f"D{a % 4}", sitting_id=ids[b % 3],
                                              order=1 + b % 3, present=20 + a % 15,
                                              proxies=b % 4,
                                              votes=(49, 30 + a % 25, 10 + b % 10, a % 12, 2))
    if kind == 2:
        return "social_aid", "create_scheme", scheme(budget=40_000 + 10_000 * (a % 3),
                                                     scheme_id=("energie-2026", "x")[b % 2])
    if kind == 3:
        return "social_aid", "disburse", disbursement(n=a % 4, amount=1 + (b * 997) % 31_000)
    if kind == 4:
        payload = disbursement(n=a % 4)
        del payload["amount_cents"]
        return "social_aid", ("approve" if b % 2 else "cancel"), payload
    if kind == 5:
        return "reports", "submit", report(lat=None if a % 3 == 0 else a * 100,
                                           long=b * (100 if a % 2 else 1))
    if kind == 6:
        return "notary", "anchor", anchor(document=bytes([a % 5]))
    if kind == 7:
        return "identity", "revoke", {"siret": siret("montreuil"),
                                      "key": pub(PEOPLE[a % len(PEOPLE)])}
    return "identity", "enroll", {"siret": siret("montreuil"), "key": pub(f"new{a % 3}"),
                                  "roles": ["clerk"]}


def _reference(kind: int, b: int, earlier: str) -> tuple[str, str, dict[str, Any], str]:
    """Templates that name an earlier transaction's id: governance and report follow-ups."""
    if kind == len(NATURAL):
        return "governance", "propose", {
            "siret": siret("montreuil"), "kind": "set_parameter",
            "parameter": ("block_txs_max", "approval_numerator")[b % 2], "value": 1 + b}, (
            "montreuil.admin")
    if kind == len(NATURAL) + 1:
        return "governance", "approve", {"siret": siret("pantin"), "proposal_id": earlier}, (
            "pantin.admin")
    action = ("acknowledge", "close")[b % 2]
    return "reports", action, {"siret": siret("montreuil"), "service_request_id": earlier}, (
        "montreuil.clerk")


ops = st.lists(
    st.tuples(st.integers(0, 2 * len(PEOPLE)), st.integers(0, 11), st.integers(0, 99),
              st.integers(0, 99), st.booleans()),
    min_size=1, max_size=40,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=ops, cuts=st.lists(st.integers(1, 6), min_size=1, max_size=10),
       slice_size=st.integers(1, 4))
def test_same_transactions_give_same_roots_and_receipts_and_replay_reproduces_them(
    ops: list[tuple[int, int, int, int, bool]], cuts: list[int], slice_size: int
) -> None:
    """The replay runs each block a slice at a time (as a node does), the first run in one
    go (``execute_block``): same receipts, changes and roots."""
    first = Chain()
    # A preamble that lets later operations reach the deeper rules (budget, quorum...).
    txs: list[Transaction] = [
        *(first.tx(*step) for step in scheme_steps(budget=60_000)),
        *(first.tx("montreuil.clerk", "deliberations", "record_sitting",
                   sitting(sitting_id=sid, present=p)) for sid, p in (("S1", 30), ("S2", 20))),
    ]
    for who, kind, a, b, replay in ops:
        if replay and txs:
            txs.append(txs[a % len(txs)])  # resubmitted: must be refused the second time
            continue
        if kind >= len(NATURAL):  # refer to an earlier transaction (maybe a proposal/report)
            earlier = txs[a % len(txs)].tx_id.hex()
            contract, action, payload, natural = _reference(kind, b, earlier)
        else:
            contract, action, payload = _op(kind, a, b)
            natural = NATURAL[kind]
        signer = PEOPLE[who] if who < len(PEOPLE) else natural
        txs.append(first.tx(signer, contract, action, payload))
    blocks: list[list[Transaction]] = []
    position = 0
    while position < len(txs):
        size = cuts[len(blocks) % len(cuts)]
        blocks.append(txs[position:position + size])
        position += size
    envs: list[BlockEnv] = []
    roots, receipts = [], []
    for block in blocks:
        envs.append(first.env())
        receipts.append(first.block(*block))
        roots.append(first.root())
    second = Chain()
    for env, block, root, expected in zip(envs, blocks, roots, receipts, strict=True):
        execution = BlockExecution(second.state, env, block, second.recent)
        if len(block) > slice_size:
            execution.run(slice_size)
            with pytest.raises(AssertionError, match="before every transaction ran"):
                execution.result()
        while not execution.run(slice_size):
            pass
        result = execution.result()
        second.recent.record(env.time_ms, block)
        assert list(result.changes) == sorted(result.changes)
        second.state.apply(result.changes)
        assert result.receipts == expected
        assert second.root() == root
    assert second.state.items() == first.state.items()


def test_different_transactions_give_different_roots() -> None:
    """The property above could pass vacuously if roots ignored the state: they don't."""
    a, b = Chain(), Chain()
    x = a.tx("montreuil.clerk", "notary", "anchor", anchor(document=b"1"))
    y = a.tx("montreuil.clerk", "notary", "anchor", anchor(document=b"2"))
    a.block(x)
    b.block(y)
    assert a.root() != b.root()


def test_a_huge_unknown_field_name_still_gives_a_valid_receipt() -> None:
    chain = Chain()
    receipt = chain.do("montreuil.clerk", "notary", "anchor", {**anchor(), "é" * 20_000: 1})
    assert receipt.code == "invalid_payload"
    assert len(receipt.message.encode()) <= MESSAGE_BYTES_MAX
    assert receipt.message.startswith("the field éé") and receipt.message.endswith("…")
    assert Receipt.decode(receipt.encode()) == receipt
