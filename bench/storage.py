"""Blocks/s and state writes/s through ChainStore.commit_block, against plyvel's raw ceiling.

The ceiling is measured in the same run: a fresh LevelDB gets exactly the same keys and values
(block, state hash, state writes, receipt, marker) in one raw WriteBatch per block, with the same
sync setting.  The ratio says how much of LevelDB's speed the chain store keeps.

    python bench/storage.py [--blocks 2000] [--writes 100] [--value-bytes 100] [--sync-blocks 300]
"""

from __future__ import annotations

import argparse
import hashlib
import tempfile
import time
from pathlib import Path

import plyvel

from node.codec import pack
from node.storage.chain import ChainStore
from node.storage.keys import Space, u64

Block = tuple[bytes, dict[bytes, bytes | None], dict[bytes, bytes], bytes]


def make_blocks(count: int, writes: int, value_bytes: int) -> list[Block]:
    blocks = []
    for i in range(count):
        state = {hashlib.sha256(b"%d/%d" % (i, j)).digest(): bytes([j % 256]) * value_bytes for j in range(writes)}
        receipts = {hashlib.sha256(b"action %d" % i).digest(): b"ok" * 16}
        blocks.append((b"B" * 256, state, receipts, hashlib.sha256(b"state %d" % i).digest()))
    return blocks


def raw_pairs(index: int, block: Block) -> list[tuple[bytes, bytes]]:
    """The exact key/value pairs commit_block writes for this block."""
    data, state, receipts, state_hash = block
    pairs = [(Space.BLOCKS.value + u64(index), data), (Space.STATE_HASHES.value + u64(index), state_hash)]
    pairs += [(Space.STATE.value + k, v) for k, v in state.items() if v is not None]
    pairs += [(Space.RECEIPTS.value + k, v) for k, v in receipts.items()]
    pairs.append((Space.META.value + b"applied", pack([index, state_hash])))
    return pairs


def bench_chain(path: Path, blocks: list[Block], sync: bool) -> float:
    with ChainStore.open(path, sync=sync) as chain:
        start = time.perf_counter()
        for i, (data, state, receipts, state_hash) in enumerate(blocks):
            chain.commit_block(i, data, state, receipts, state_hash)
        return time.perf_counter() - start


def bench_raw(path: Path, blocks: list[Block], sync: bool) -> float:
    prepared = [raw_pairs(i, b) for i, b in enumerate(blocks)]
    db = plyvel.DB(str(path), create_if_missing=True, paranoid_checks=True)
    try:
        start = time.perf_counter()
        for pairs in prepared:
            with db.write_batch(sync=sync) as wb:
                for key, value in pairs:
                    wb.put(key, value)
        return time.perf_counter() - start
    finally:
        db.close()


def run(count: int, writes: int, value_bytes: int, sync: bool, rounds: int) -> None:
    blocks = make_blocks(count, writes, value_bytes)
    best_chain = best_raw = float("inf")
    for r in range(rounds):  # alternate and keep the best: the machine is shared
        with tempfile.TemporaryDirectory() as tmp:
            best_raw = min(best_raw, bench_raw(Path(tmp) / f"raw{r}", blocks, sync))
            best_chain = min(best_chain, bench_chain(Path(tmp) / f"chain{r}", blocks, sync))
    keys = len(raw_pairs(0, blocks[0]))
    mode = "on " if sync else "off"
    print(f"sync={mode} {count} blocks x {writes} state writes of {value_bytes} B ({keys} keys/block)")
    for name, seconds in (("ChainStore.commit_block", best_chain), ("plyvel raw WriteBatch", best_raw)):
        print(f"  {name:24}: {count / seconds:10.0f} blocks/s {count * writes / seconds:12.0f} state writes/s")
    print(f"  {'ratio chain/raw':24}: {best_raw / best_chain:10.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--blocks", type=int, default=2000, help="blocks per run without fsync")
    parser.add_argument("--sync-blocks", type=int, default=300, help="blocks per run with fsync per block")
    parser.add_argument("--writes", type=int, default=100, help="state writes per block")
    parser.add_argument("--value-bytes", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    run(args.blocks, args.writes, args.value_bytes, False, args.rounds)
    run(args.sync_blocks, args.writes, args.value_bytes, True, args.rounds)


if __name__ == "__main__":
    main()
