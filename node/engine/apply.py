"""Applying decided blocks: execute their actions, then persist block, state and receipts at once.

Synchronous (plyvel is blocking); the engine calls it from one task through
`trio.to_thread.run_sync`, in block order.  A block at or below the last applied index is skipped,
so replaying the graph after a restart never applies a block twice.
"""

from __future__ import annotations

from dataclasses import dataclass

from node.actions import BlockContext, BlockResult, execute_block
from node.consensus.blocks import Block
from node.engine.records import encode_block
from node.storage.chain import ChainStore


@dataclass(frozen=True)
class AppliedBlock:
    block: Block  # with its state hash
    result: BlockResult


class BlockApplier:
    def __init__(self, chain: ChainStore, origin: str) -> None:
        self.chain = chain
        self.origin = origin

    def last_index(self) -> int:
        last = self.chain.last_applied()
        return -1 if last is None else last.block_index

    def apply(
        self, block: Block, members: tuple[bytes, ...] = (), election: tuple[int, bytes] | None = None
    ) -> AppliedBlock | None:
        """`members`: public keys of the peer set that decided the block (signers of internal
        records, and the executor candidates); `election`: the (round, seed) the block carries."""
        if block.index <= self.last_index():
            return None
        context = BlockContext(block.index, block.timestamp, self.origin, members=members, election=election)
        result = execute_block(self.chain.state, list(block.transactions), context)
        sealed = block.with_state_hash(result.state_hash)
        self.chain.commit_block(
            block.index, encode_block(sealed), result.writes, result.receipts_by_action(block.index), result.state_hash
        )
        return AppliedBlock(sealed, result)
