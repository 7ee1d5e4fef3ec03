"""Persist before send, with one disk flush per run of records (node.runtime rules)."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from consensus.events import Broadcast, Effect, Persist, PersistRecord, Send, SetTimer
from node.runtime import persist_batches

_records = st.builds(PersistRecord, st.binary(min_size=1, max_size=4),
                     st.none() | st.binary(max_size=4))
_effects = st.lists(st.one_of(
    st.builds(Persist, _records),
    st.builds(Broadcast, st.binary(max_size=4)),
    st.builds(Send, st.binary(min_size=1, max_size=4), st.binary(max_size=4)),
    st.builds(SetTimer, st.sampled_from(["view", "heartbeat"]), st.integers(0, 10**6)),
), max_size=30)


@given(_effects)
def test_every_record_is_written_before_the_effect_that_followed_it(
        effects: list[Effect]) -> None:
    out = list(persist_batches(effects))
    flattened: list[Effect] = []
    for item in out:
        if isinstance(item, tuple):
            assert item, "an empty batch would be a useless disk flush"
            flattened.extend(Persist(record) for record in item)
        else:
            flattened.append(item)
    assert flattened == effects  # same effects, same order: nothing sent before its record
    for before, after in itertools.pairwise(out):
        assert not (isinstance(before, tuple) and isinstance(after, tuple))


def test_a_checkpoint_clean_up_is_one_flush() -> None:
    deletes = [Persist(PersistRecord(b"p/vote/%d" % h, None)) for h in range(40)]
    vote = Broadcast(b"commit")
    out = list(persist_batches([*deletes, vote, Persist(PersistRecord(b"p/view", b"1"))]))
    assert out == [tuple(d.record for d in deletes), vote, (PersistRecord(b"p/view", b"1"),)]
