"""Deterministic simulation of a cluster with faults (issue 10).

    python -m simulations.deterministic --seed 7 --nodes 4 --faults all
    python -m simulations.deterministic --seeds 0..199 --faults all --fault-seconds 4

Each seed runs N real nodes (Hashgraph + MemberCore + GossipService) in one Trio run on a
MockClock over a seeded in-memory network, injects the faults until the heal, then checks
agreement, that no acknowledged transaction is lost or applied twice, and liveness after the
heal.  The same seed gives the same chains byte for byte (same chain digest).  A violation prints
the seed and a one-line reason; the exit status is 1 if any seed failed.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence

from simulations.det_faults import FaultSpecError, parse_faults
from simulations.det_run import RunResult, SimConfig, run


def parse_seeds(args: argparse.Namespace) -> range:
    if args.seeds:
        first, sep, last = args.seeds.partition("..")
        if not sep:
            raise argparse.ArgumentTypeError("--seeds takes A..B (both included)")
        return range(int(first), int(last) + 1)
    return range(args.seed, args.seed + 1)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m simulations.deterministic", description=__doc__.split("\n")[0])
    p.add_argument("--seed", type=int, default=0, help="the seed to run (default 0)")
    p.add_argument("--seeds", help="a range of seeds A..B (both included) instead of --seed")
    p.add_argument("--nodes", type=int, default=4, help="cluster size (default 4)")
    p.add_argument("--faults", default="all", help="drop,delay,reorder,partition,crash,dup|all|none; +wipe")
    p.add_argument("--fault-seconds", type=float, default=6.0, help="simulated seconds of faults before the heal")
    p.add_argument("--liveness-seconds", type=float, default=60.0, help="deadline to decide everything after the heal")
    p.add_argument("--tx-interval", type=float, default=0.1, help="mean simulated seconds between submissions")
    p.add_argument("--heartbeat-ms", type=int, default=10, help="busy gossip heartbeat (the engine's is 10)")
    p.add_argument("--keep-rounds", type=int, default=50, help="rounds kept in memory (the engine's is 50; min 8)")
    p.add_argument("--no-verify", action="store_true", help="skip event signature checks (faster)")
    p.add_argument("--strict-ack", action="store_true",
                   help="a transaction accepted by a node that crashed before putting it in an event counts as lost")
    p.add_argument("--quiet", action="store_true", help="print failures and the totals only")
    return p


def config(args: argparse.Namespace, seed: int) -> SimConfig:
    return SimConfig(
        seed, nodes=args.nodes, faults=parse_faults(args.faults), fault_seconds=args.fault_seconds,
        liveness_seconds=args.liveness_seconds, tx_interval=args.tx_interval, heartbeat_ms=args.heartbeat_ms,
        verify_signatures=not args.no_verify, keep_rounds=args.keep_rounds, strict_ack=args.strict_ack,
    )


def summary(r: RunResult, wall: float) -> str:
    s = r.stats
    return (
        f"seed {r.seed}: {'ok' if r.ok else 'VIOLATION'} blocks={r.blocks} txs={r.transactions} "
        f"sim={r.sim_seconds:.2f}s live_after_heal={r.heal_to_live_seconds:.2f}s wall={wall:.2f}s "
        f"digest={r.digest} msgs={s.get('messages')} dropped={s.get('dropped')} dup={s.get('duplicated')} "
        f"reordered={s.get('reordered')} partitions={s.get('partitions')} crashes={s.get('crashes')} "
        f"lost_pending={s.get('lost_pending')} archive_served={s.get('archive_served')}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        seeds = parse_seeds(args)
        parse_faults(args.faults)
    except (argparse.ArgumentTypeError, FaultSpecError, ValueError) as exc:
        parser.error(str(exc))
    if args.nodes < 2:
        parser.error("--nodes must be at least 2")
    failed: list[int] = []
    sim_total = 0.0
    started = time.perf_counter()  # wall time is measured for the report only, never used by a run
    for seed in seeds:
        t0 = time.perf_counter()
        result = run(config(args, seed))
        wall = time.perf_counter() - t0
        sim_total += result.sim_seconds
        if not result.ok:
            failed.append(seed)
            print(f"VIOLATION seed={seed}: {result.reason}", flush=True)
        if not args.quiet or not result.ok:
            print(summary(result, wall), flush=True)
    wall_total = time.perf_counter() - started
    print(
        f"{len(seeds)} seeds, {len(failed)} failed{' ' + str(failed) if failed else ''}; "
        f"simulated {sim_total:.1f}s in {wall_total:.1f}s wall ({len(seeds) / max(wall_total, 1e-9):.2f} seeds/s)",
        flush=True,
    )
    return 1 if failed else 0


def _pin_hash_seed() -> None:
    """Re-run with PYTHONHASHSEED pinned, so set and dict orders of str keys never differ between runs."""
    if os.environ.get("PYTHONHASHSEED") != "0":
        env = dict(os.environ, PYTHONHASHSEED="0")
        os.execve(sys.executable, [sys.executable, "-m", "simulations.deterministic", *sys.argv[1:]], env)


if __name__ == "__main__":
    _pin_hash_seed()
    sys.exit(main())
