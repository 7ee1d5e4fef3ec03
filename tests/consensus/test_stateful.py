"""Hypothesis drives the simulator: deliver, drop, duplicate, crash, restart, advance
time, partition and heal in any order, with the invariant checker after every step; at the
end the network heals, crashed replicas restart, and every transaction must commit."""

from __future__ import annotations

import heapq

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from consensus.events import MessageReceived
from testkit.sim.core import GENESIS_TIME_MS, Simulation

N = 4
F = 1
START_MS = GENESIS_TIME_MS + 1_000


class ConsensusMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.sim = Simulation(0, N, scenario="hypothesis_stateful")
        self.crashed: set[int] = set()

    @initialize(seed=st.integers(0, 2**32))
    def start(self, seed: int) -> None:
        self.sim = Simulation(seed, N, scenario="hypothesis_stateful")
        self.sim.submit(6)

    def _message_positions(self) -> list[int]:
        return [i for i, item in enumerate(self.sim.queue)
                if isinstance(item[3], MessageReceived)]

    @rule(steps=st.integers(1, 60))
    def deliver(self, steps: int) -> None:
        for _ in range(steps):
            if not self.sim.step():
                break

    @precondition(lambda self: bool(self._message_positions()))
    @rule(pick=st.integers(0, 10_000))
    def drop(self, pick: int) -> None:
        positions = self._message_positions()
        del self.sim.queue[positions[pick % len(positions)]]
        heapq.heapify(self.sim.queue)

    @precondition(lambda self: bool(self._message_positions()))
    @rule(pick=st.integers(0, 10_000), delay=st.integers(0, 200))
    def duplicate(self, pick: int, delay: int) -> None:
        positions = self._message_positions()
        at, _, node_id, item = self.sim.queue[positions[pick % len(positions)]]
        self.sim.seq += 1
        heapq.heappush(self.sim.queue, (at + delay, self.sim.seq, node_id, item))

    @precondition(lambda self: len(self.crashed) < F)
    @rule(index=st.integers(0, N - 1))
    def crash(self, index: int) -> None:
        self.sim.crash(index)
        self.crashed.add(index)

    @precondition(lambda self: bool(self.crashed))
    @rule()
    def restart(self) -> None:
        index = min(self.crashed)
        self.sim.restart(index)
        self.crashed.discard(index)

    @rule(ms=st.integers(1, 1_500))
    def advance_time(self, ms: int) -> None:
        self.sim.run(self.sim.time - START_MS + ms, steps_max=3_000)

    @rule(cut=st.sets(st.integers(0, N - 1), min_size=1, max_size=N - 1))
    def partition(self, cut: set[int]) -> None:
        self.sim.set_partition([cut, set(range(N)) - cut])

    @rule()
    def heal(self) -> None:
        self.sim.set_partition(None)

    @rule(count=st.integers(1, 5))
    def submit(self, count: int) -> None:
        self.sim.submit(count)

    @invariant()
    def checker_found_nothing(self) -> None:
        assert self.sim.checker.violations == []

    def teardown(self) -> None:
        self.sim.set_partition(None)
        for index in sorted(self.crashed):
            self.sim.restart(index)
        self.sim.run_until_committed(60_000)


TestConsensusMachine = ConsensusMachine.TestCase
TestConsensusMachine.settings = settings(max_examples=12, stateful_step_count=25,
                                         deadline=None)
