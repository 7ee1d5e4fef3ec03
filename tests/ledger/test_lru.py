"""ledger.lru: the bounded memory behind the node's memos."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.lru import Lru


def test_the_least_recently_used_is_forgotten_first_and_in_changes_nothing() -> None:
    lru: Lru[str, int | None] = Lru(2)
    lru.remember("a", 1)
    lru.remember("b", None)  # None is a value: known, not absent
    assert lru.touch("b") and lru.get("b", 7) is None and lru.get("zz", 7) == 7
    assert "a" in lru  # asking does not make "a" recent...
    lru.remember("c", 3)
    assert "a" not in lru and len(lru) == 2  # ...so it went first
    assert lru.get("b") is None and lru.get("c") == 3
    lru.forget("c")
    lru.forget("never there")
    assert len(lru) == 1 and not lru.touch("c")
    with pytest.raises(ValueError, match="at least 1"):
        Lru(0)


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 5), st.lists(st.tuples(st.sampled_from("gr"), st.integers(0, 9))))
def test_it_holds_exactly_the_most_recently_used_keys(
        size: int, operations: list[tuple[str, int]]) -> None:
    lru: Lru[int, int] = Lru(size)
    order: list[int] = []  # a plain model: least recently used first
    for operation, key in operations:
        if operation == "r":
            lru.remember(key, -key)
            order = [k for k in order if k != key] + [key]
            order = order[-size:]
        else:
            assert lru.get(key) == (-key if key in order else None)
            if key in order:
                order = [k for k in order if k != key] + [key]
    assert len(lru) == len(order) and all(k in lru for k in order)
