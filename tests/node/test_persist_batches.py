"""Persist before send with one disk flush per group of events, and votes before
execution (node.runtime rules)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from consensus.events import Broadcast, Deliver, Effect, Persist, PersistRecord, Send, SetTimer
from ledger.genesis import Genesis
from ledger.records import CommitCertificate
from node.runtime import plan_group
from testkit.sim.executor import SimExecutor
from tests.consensus.test_replica import GENESIS


def _delivery(view: int, genesis: Genesis = GENESIS) -> Deliver:
    """A delivery of block 1 (told apart by the view of its certificate)."""
    block = SimExecutor(genesis).build_block(
        height=1, view=0, prev_hash=bytes(32), time_ms=1_000, proposer=bytes(32),
        transactions=())
    return Deliver(block, CommitCertificate(1, view, block.header.block_hash, ()))


_records = st.builds(PersistRecord, st.binary(min_size=1, max_size=4),
                     st.none() | st.binary(max_size=4))
_effects = st.lists(st.one_of(
    st.builds(Persist, _records),
    st.builds(Broadcast, st.binary(max_size=4)),
    st.builds(Send, st.binary(min_size=1, max_size=4), st.binary(max_size=4)),
    st.builds(SetTimer, st.sampled_from(["view", "heartbeat"]), st.integers(0, 10**6)),
    st.sampled_from([_delivery(v) for v in (0, 1, 2)]),
), max_size=30)


@given(_effects)
def test_records_come_first_deliveries_last_and_each_kind_keeps_its_order(
        effects: list[Effect]) -> None:
    plan = plan_group(effects)
    carried = [*(Persist(r) for r in plan.records), *plan.actions, *plan.deliveries]
    assert sorted(map(repr, carried)) == sorted(map(repr, effects))  # nothing lost or added
    assert list(plan.records) == [e.record for e in effects if isinstance(e, Persist)]
    assert list(plan.deliveries) == [e for e in effects if isinstance(e, Deliver)]
    assert list(plan.actions) == [e for e in effects
                                  if not isinstance(e, (Persist, Deliver))]


def test_a_vote_decided_after_a_delivery_leaves_before_the_block_executes() -> None:
    delivered, vote = _delivery(0), Broadcast(b"prepare 2")
    plan = plan_group([delivered, Persist(PersistRecord(b"p/vote/2", b"v")), vote])
    assert plan.actions == (vote,) and plan.deliveries == (delivered,)


def test_a_group_with_a_checkpoint_clean_up_is_one_flush() -> None:
    deletes = [Persist(PersistRecord(b"p/vote/%d" % h, None)) for h in range(40)]
    vote = Broadcast(b"commit")
    view = Persist(PersistRecord(b"p/view", b"1"))
    plan = plan_group([*deletes, vote, view])
    assert plan.records == (*(d.record for d in deletes), view.record)
    assert plan.actions == (vote,)
