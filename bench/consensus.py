"""Hashgraph throughput against the machine's own Ed25519 verify speed.

Prints, for each member count, events/s through insert + consensus (signature checks off,
hashes precomputed), the Ed25519 verify/s of this machine measured in the same run (PyNaCl),
and the ratio consensus-cost / verify-cost per event (goal: <= 0.2 at n=4, <= 0.5 at n=16).
Rates are CPU time of this process (`time.process_time`), so other load on a shared machine
skews the ratio less than wall-clock time would; both sides of the ratio are the best of several
measurements (verify: of short samples, consensus: of `--repeat` runs over the same graph).

    python bench/consensus.py                 # 50,000-event graphs, n = 4, 16, 64
    python bench/consensus.py --events 5000   # quick run
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import random
import time

import nacl.signing

from node.consensus.event import Event
from node.consensus.gossipgen import random_gossip
from node.consensus.hashgraph import Hashgraph
from node.consensus.peers import PeerSchedule, PeerSet


def verify_rate(seconds: float, samples: int = 5) -> float:
    """Best of several short samples of CPU time."""
    key = nacl.signing.SigningKey(b"\x01" * 32)
    message = b"\x02" * 52  # a tagged 32-byte event hash
    signature = key.sign(message).signature
    verify = key.verify_key.verify
    best = 0.0
    for _ in range(samples):
        count, start = 0, time.process_time()
        while time.process_time() - start < seconds / samples:
            for _ in range(100):
                verify(message, signature)
            count += 100
        best = max(best, count / (time.process_time() - start))
    return best


def hash_rate(events: list[Event], limit: int = 5000) -> float:
    """Hash + decode cost of events as they arrive from the wire (not part of the ratio)."""
    wires = [dataclasses.replace(e, signature=bytes(64)).to_wire() for e in events[:limit]]
    start = time.process_time()
    for w in wires:
        _ = Event.from_wire(w).hash
    return len(wires) / (time.process_time() - start)


def consensus_rate(n: int, count: int, every: int, keep_rounds: int, seed: int) -> tuple[float, Hashgraph, int]:
    rng = random.Random(seed)
    members = [rng.randbytes(32) for _ in range(n)]
    events = list(random_gossip(members, count, rng))
    graph = Hashgraph(PeerSchedule(PeerSet.of(members)), verify_signatures=False, keep_rounds=keep_rounds)
    blocks = 0
    gc.collect()
    start = time.process_time()
    insert, run = graph.insert, graph.run_consensus
    for i, event in enumerate(events):
        insert(event)
        if every == 1 or i % every == 0:
            done = run()
            if done:  # (most calls process no round: no generator for them)
                blocks += sum(1 for d in done if d.block is not None)
    blocks += sum(1 for done in graph.run_consensus() if done.block is not None)
    elapsed = time.process_time() - start
    return count / elapsed, graph, blocks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=50_000, help="events per graph (default 50,000)")
    parser.add_argument("--sizes", default="4,16,64", help="member counts (default 4,16,64)")
    parser.add_argument("--every", type=int, default=1, help="run consensus after every N inserts (default 1)")
    parser.add_argument("--keep-rounds", type=int, default=20, help="rounds kept in memory (default 20)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=2, help="runs per size; the fastest counts (default 2)")
    args = parser.parse_args()

    verify = verify_rate(1.0)
    sample = list(random_gossip([bytes([i]) * 32 for i in range(4)], 2000, random.Random(0)))
    print(f"event decode + hash:     {hash_rate(sample):,.0f}/s  (not in the ratio)")
    header = ("n", "events", "events/s", "us/event", "ratio", "rounds", "blocks", "in mem")
    print("{:>4} {:>8} {:>10} {:>9} {:>6} {:>7} {:>7} {:>7}".format(*header))
    for n in (int(s) for s in args.sizes.split(",")):
        rate, graph, blocks = max(
            (consensus_rate(n, args.events, args.every, args.keep_rounds, args.seed) for _ in range(args.repeat)),
            key=lambda run: run[0],
        )
        verify = max(verify, verify_rate(0.5))  # again right after, under the same load
        ratio = verify / rate
        print(
            f"{n:>4} {args.events:>8} {rate:>10,.0f} {1e6 / rate:>9.1f} {ratio:>6.3f} "
            f"{graph.next_to_process:>7} {blocks:>7} {graph.event_count():>7}"
        )
    print(f"ed25519 verify (pynacl, best sample): {verify:,.0f}/s  ({1e6 / verify:.1f} us each)")
    print("ratio = consensus cost per event / Ed25519 verify cost (goal <= 0.2 at n=4, <= 0.5 at n=16)")


if __name__ == "__main__":
    main()
