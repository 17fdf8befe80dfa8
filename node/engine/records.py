"""How the engine stores consensus objects in the chain store, and how it reloads them."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import Any

from node import codec
from node.consensus.blocks import Block, BlockDecodeError
from node.consensus.event import Event
from node.errors import InvalidInput


class RecordError(InvalidInput):
    """A stored record that does not decode (a damaged or foreign store)."""


def encode_block(block: Block) -> bytes:
    return codec.pack(block.body())


def decode_block(data: bytes) -> Block:
    """The block `encode_block` stored (with its election, if it carries one)."""
    try:
        body: Any = codec.unpack(data)
        return Block.from_body(body)
    except (ValueError, TypeError, codec.DecodeError, BlockDecodeError) as exc:
        raise RecordError(f"stored block does not decode: {exc}") from exc


def topological(events: Iterable[Event], *, outside_known: bool = False) -> list[Event]:
    """Order events so every parent comes before its children.

    Per creator, events are taken in index order; a creator's next event waits until its
    other-parent is placed.  With `outside_known`, a parent that is not in `events` counts as
    already known (a batch for a peer that holds everything before it); otherwise events whose
    parents never appear are left out (pruned history or a damaged store), as insertion would
    reject them anyway.
    """
    chains: dict[bytes, deque[Event]] = {}
    batch = list(events)
    for event in sorted(batch, key=lambda e: (e.creator, e.index)):
        chains.setdefault(event.creator, deque()).append(event)
    placed: set[bytes] = set()
    if outside_known:
        inside = {e.hash for e in batch}
        placed = _Outside(inside)
    out: list[Event] = []
    progress = True
    while progress:
        progress = False
        for chain in chains.values():
            while chain:
                event = chain[0]
                parents = [p for p in (event.self_parent, event.other_parent) if p is not None]
                if not all(p in placed for p in parents):
                    break
                chain.popleft()
                placed.add(event.hash)
                out.append(event)
                progress = True
    return out


class _Outside(set[bytes]):
    """A `placed` set in which every hash outside the batch counts as placed."""

    def __init__(self, inside: set[bytes]) -> None:
        super().__init__()
        self.inside = inside

    def __contains__(self, item: object) -> bool:
        return item not in self.inside or super().__contains__(item)
