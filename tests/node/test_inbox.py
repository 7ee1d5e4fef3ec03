"""The inbox byte budget: a peer over its share waits, the others go on."""

from __future__ import annotations

import asyncio

from node.inbox import InboxBytes
from testkit.wait import until

A, B, C = b"a" * 32, b"b" * 32, b"c" * 32
MiB = 1024 * 1024


def test_a_peer_over_its_share_waits_and_the_others_go_on() -> None:
    async def main() -> None:
        budget = InboxBytes(total_max=48 * MiB, per_peer_max=32 * MiB)
        for _ in range(2):  # a Byzantine peer sends two 16 MiB frames: its whole share
            await budget.acquire(A, 16 * MiB)
        third = asyncio.ensure_future(budget.acquire(A, 16 * MiB))
        await asyncio.sleep(0.05)
        assert not third.done()  # the third frame of A waits (its reader stops: TCP)
        await asyncio.wait_for(budget.acquire(B, 1 * MiB), 5)  # B is not held up
        assert budget.total == 33 * MiB
        big = asyncio.ensure_future(budget.acquire(C, 16 * MiB))  # over the total
        await asyncio.sleep(0.05)
        assert not big.done()
        budget.release(A, 16 * MiB)  # the replica took one frame of A: room for one
        await until(lambda: big.done() or third.done(), 5, "a waiting frame to fit")
        assert not (big.done() and third.done())  # not both: the total stays bounded
        assert budget.total <= 48 * MiB and budget.held(A) <= 32 * MiB
        budget.release(B, 1 * MiB)
        budget.release(A, 16 * MiB)
        await until(lambda: big.done() and third.done(), 5, "both frames in turn")
        assert budget.total == 32 * MiB and budget.held(A) == budget.held(C) == 16 * MiB
    asyncio.run(main())


def test_a_frame_larger_than_a_share_still_passes_alone() -> None:
    async def main() -> None:
        budget = InboxBytes(total_max=8, per_peer_max=4)
        await asyncio.wait_for(budget.acquire(A, 10), 5)
        assert budget.total == 10
        late = asyncio.ensure_future(budget.acquire(B, 1))
        await asyncio.sleep(0.05)
        assert not late.done()
        budget.release(A, 10)
        await until(late.done, 5, "B once A's frame left")
    asyncio.run(main())
