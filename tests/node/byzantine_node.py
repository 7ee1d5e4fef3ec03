"""A Byzantine validator for the real-process tests: this repository's node with ONE change
in its replica — every block body it sends (pre-prepares, bodies asked for by hash,
blocks served to a peer catching up) keeps its signed header but loses its first
transaction. Signatures cover headers only, so everything it sends still verifies as far
as signatures go; only the block check (``txs_root``) exposes it.

Run as ``python -m tests.node.byzantine_node --config FILE``; it logs one line per
tampered body so that a test can prove the attack took place.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import replace

import node.runtime as runtime
from consensus.events import Broadcast, Effect, Event, Send, ServeBlocks
from consensus.messages import (
    BlockBody,
    BlocksResponse,
    CommittedProof,
    PrePrepare,
    decode_message,
    encode_message,
)
from consensus.replica import Replica
from ledger.errors import DecodeError
from ledger.records import Block

log = logging.getLogger("tabellion.byzantine")


def _swap(block: Block) -> Block:
    return Block(block.header, block.transactions[1:]) if block.transactions else block


def tamper(data: bytes) -> bytes:
    """The same message with every body it carries swapped (signed parts untouched)."""
    try:
        message = decode_message(data)
    except DecodeError:
        return data
    if isinstance(message, PrePrepare) and message.block.transactions:
        log.warning("byzantine: tampered pre-prepare at height %d", message.height)
        return encode_message(replace(message, block=_swap(message.block)))
    if isinstance(message, BlockBody) and message.block.transactions:
        log.warning("byzantine: tampered body at height %d", message.block.header.height)
        return encode_message(replace(message, block=_swap(message.block)))
    return data


class TamperingReplica(Replica):
    def step(self, event: Event) -> list[Effect]:
        out: list[Effect] = []
        for effect in super().step(event):
            if isinstance(effect, Send):
                effect = Send(effect.to, tamper(effect.data))
            elif isinstance(effect, Broadcast):
                effect = Broadcast(tamper(effect.data))
            out.append(effect)
        return out


class TamperingNode(runtime.Node):
    def _serve_blocks(self, effect: ServeBlocks) -> None:
        """Serve the stored blocks with their bodies swapped (the certificates verify)."""
        last = min(effect.to_height, self.chain.height)
        proofs = tuple(CommittedProof(_swap(self.chain.store.get(h).block),
                                      self.chain.store.get(h).certificate)
                       for h in range(effect.from_height, min(last, effect.from_height + 7) + 1))
        if proofs:
            log.warning("byzantine: tampered state transfer from height %d", effect.from_height)
            message = encode_message(BlocksResponse(self.chain_id, proofs))
            self.transport.send(effect.to, bytes([runtime.CH_CONSENSUS]) + message)


def main() -> int:
    # The module globals the node's start-up looks up at call time.
    vars(runtime).update(Replica=TamperingReplica, Node=TamperingNode)
    from node.__main__ import main as node_main

    return node_main()


if __name__ == "__main__":
    sys.exit(main())
