"""node.runtime's execution task: a delivered block executes a slice at a time, and the
event loop serves everything else between the slices (votes never wait for a block)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from consensus.events import BlockExecuted, Deliver
from node.runtime import EXECUTION_SLICE_TXS, Node
from tests.node.test_chain import _block, _net


def test_a_delivered_block_executes_in_slices_while_the_event_loop_serves_the_rest(
        tmp_path: Path) -> None:
    net = _net(tmp_path)
    dev = net.nodes[0]
    node = Node(dev.config, net.genesis, dev.validator_key)
    try:
        block, cert = _block(net, node.chain, 1, 3 * EXECUTION_SLICE_TXS + 1)

        async def scenario() -> tuple[object, list[int]]:
            heights_seen: list[int] = []

            async def other_work() -> None:  # stands for a vote, a request, a peer's frame
                while True:
                    heights_seen.append(node.chain.height)
                    await asyncio.sleep(0)

            execution = asyncio.ensure_future(node._execute_delivered())
            other = asyncio.ensure_future(other_work())
            node._deliver(Deliver(block, cert))
            node._deliver(Deliver(block, cert))  # delivery is at-least-once: queued once
            event = await asyncio.wait_for(node._inbox.get(), 60)
            await asyncio.sleep(0)
            for task in (execution, other):
                task.cancel()
            return event, heights_seen

        event, heights_seen = asyncio.run(scenario())
        assert isinstance(event, BlockExecuted) and event.height == 1
        # The other work ran between the slices, before the block was stored...
        assert heights_seen.count(0) >= 3
        # ...and the block was executed and stored once.
        assert node.chain.height == node.chain.executed_height == 1
        assert node.chain.store.get(1).block == block
        assert node._inbox.empty()
    finally:
        node.chain.close()
