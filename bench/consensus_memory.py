"""Flat memory over a long run: 1,000,000 gossip events through one hashgraph with pruning.

Events are generated on the fly (each member builds on its own last event and another member's
last event, as `node.consensus.gossipgen` does) and inserted at once, so the run never holds more
than the graph keeps.  Signature checks are off.  Every `--report` events it prints the events
inserted, the events in memory, the rounds decided, the process RSS (VmRSS), the live Python
memory blocks (`sys.getallocatedblocks`), the objects the garbage collector tracks and, with
`--tracemalloc`, tracemalloc's current traced size; the last line compares memory at 200k events
with memory at the end.  tracemalloc makes the run about 5 times slower (some 8 minutes for a
million events here), hence off by default; the other three columns cost nothing between reports.

    python bench/consensus_memory.py                      # 1,000,000 events, n = 4, keep 20 rounds
    python bench/consensus_memory.py --events 300000 --tracemalloc
"""

from __future__ import annotations

import argparse
import gc
import random
import sys
import time
import tracemalloc
from collections.abc import Iterator

from node.consensus.event import Event
from node.consensus.hashgraph import Hashgraph
from node.consensus.peers import PeerSchedule, PeerSet

TOLERANCE = 0.10  # "flat": memory at the end within 10 % (plus 2 MiB of allocator slack) of memory at 200k
SLACK_BYTES = 2 << 20
BASELINE_AT = 200_000


def rss_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def gossip(n: int, count: int, rng: random.Random) -> Iterator[Event]:
    """`count` events among `n` members, one at a time (heads only: nothing else is kept)."""
    members = [bytes([i + 1]) * 32 for i in range(n)]
    heads: dict[bytes, Event] = {}
    for step in range(count):
        creator = members[step % n] if step < n else members[rng.randrange(n)]
        other = None
        if step >= n and n > 1:
            peer = members[rng.randrange(n - 1)]
            other = heads[members[n - 1] if peer == creator else peer].hash
        own = heads.get(creator)
        event = Event(
            creator, 0 if own is None else own.index + 1, None if own is None else own.hash, other,
            step * 1_000_000, (step.to_bytes(8, "big"),),
        )
        heads[creator] = event
        yield event


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--members", type=int, default=4)
    parser.add_argument("--keep-rounds", type=int, default=20)
    parser.add_argument("--report", type=int, default=100_000, help="print a line every N events")
    parser.add_argument("--every", type=int, default=10, help="run consensus after every N inserts")
    parser.add_argument("--tracemalloc", action="store_true", help="trace allocations (about 5x slower)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    members = [bytes([i + 1]) * 32 for i in range(args.members)]
    graph = Hashgraph(PeerSchedule(PeerSet.of(members)), verify_signatures=False, keep_rounds=args.keep_rounds)
    traced = args.tracemalloc
    if traced:
        tracemalloc.start()
    print(f"n={args.members} keep_rounds={args.keep_rounds} consensus every {args.every} inserts")
    header = ("events", "in memory", "rounds", "blocks", "RSS MiB", "traced MiB", "py blocks", "gc objects", "s")
    print("{:>10} {:>10} {:>8} {:>8} {:>8} {:>10} {:>10} {:>10} {:>6}".format(*header))
    samples: dict[int, tuple[int, int, int]] = {}
    blocks = 0
    start = time.monotonic()
    for i, event in enumerate(gossip(args.members, args.events, random.Random(args.seed)), 1):
        graph.insert(event)
        if i % args.every == 0:
            blocks += sum(1 for done in graph.run_consensus() if done.block is not None)
        if i % args.report == 0 or i == args.events:
            gc.collect()
            rss, current = rss_bytes(), tracemalloc.get_traced_memory()[0] if traced else 0
            pyblocks, objects = sys.getallocatedblocks(), len(gc.get_objects())
            samples[i] = (rss, current, pyblocks)
            shown = f"{current / 2**20:>10.1f}" if traced else f"{'-':>10}"
            print(
                f"{i:>10,} {graph.event_count():>10,} {graph.next_to_process:>8,} {blocks:>8,} "
                f"{rss / 2**20:>8.1f} {shown} {pyblocks:>10,} {objects:>10,} {time.monotonic() - start:>6.0f}"
            )
    base_at = min((k for k in samples if k >= BASELINE_AT), default=None)
    if base_at is None or base_at == args.events:
        print(f"verdict: run longer than {BASELINE_AT:,} events to compare")
        return
    (rss0, cur0, blocks0), (rss1, cur1, blocks1) = samples[base_at], samples[args.events]
    rss_flat = rss1 <= rss0 * (1 + TOLERANCE) + SLACK_BYTES
    cur_flat = not traced or cur1 <= cur0 * (1 + TOLERANCE) + SLACK_BYTES
    blocks_flat = blocks1 <= blocks0 * (1 + TOLERANCE)
    verdict = "FLAT" if rss_flat and cur_flat and blocks_flat else "GROWING"
    traced_part = f", traced {cur0 / 2**20:.1f} -> {cur1 / 2**20:.1f} MiB" if traced else ""
    print(
        f"verdict: {verdict} from {base_at:,} to {args.events:,} events: RSS {rss0 / 2**20:.1f} -> "
        f"{rss1 / 2**20:.1f} MiB{traced_part}, live Python blocks {blocks0:,} -> {blocks1:,} "
        f"(tolerance {TOLERANCE:.0%}, + {SLACK_BYTES >> 20} MiB for RSS and traced)"
    )


if __name__ == "__main__":
    main()
