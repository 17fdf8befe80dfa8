"""The seeded fault schedule: link faults, partitions and crashes, all before the heal."""

from __future__ import annotations

import random
from dataclasses import dataclass

from simulations.det_net import MS, LinkFaults

FAULT_KINDS = ("drop", "delay", "reorder", "partition", "crash", "dup")
# Not in "all": a crash that also loses the node's disk (it restarts empty and must catch up).
EXTRA_FAULT_KINDS = ("wipe",)


class FaultSpecError(ValueError):
    """An unknown fault name on the command line."""


def parse_faults(spec: str) -> frozenset[str]:
    """`drop,delay,...`, `all` or `none` (empty)."""
    names = {s.strip() for s in spec.split(",") if s.strip()}
    if "all" in names:
        names = (names - {"all"}) | set(FAULT_KINDS)
    names.discard("none")
    known = FAULT_KINDS + EXTRA_FAULT_KINDS
    unknown = names - set(known)
    if unknown:
        raise FaultSpecError(f"unknown faults {', '.join(sorted(unknown))}; known: {', '.join(known)}, all")
    return frozenset(names)


@dataclass(frozen=True)
class FaultStep:
    at: float  # simulated seconds
    kind: str  # "partition" | "join" | "crash" | "wipe" | "restart"
    nodes: frozenset[int]


def link_faults(faults: frozenset[str], rng: random.Random) -> LinkFaults:
    """Per-message faults for the run (drawn once per seed)."""
    f = LinkFaults()
    if "delay" in faults:
        f.max_delay = rng.uniform(5, 40) * MS
        f.spike = rng.uniform(0.02, 0.15)
        f.spike_max = rng.uniform(0.1, 1.0)
    if "drop" in faults:
        f.drop = rng.uniform(0.02, 0.2)
    if "dup" in faults:
        f.duplicate = rng.uniform(0.02, 0.15)
    if "reorder" in faults:
        f.reorder = rng.uniform(0.02, 0.1)
    return f


def schedule(faults: frozenset[str], n: int, fault_seconds: float, rng: random.Random) -> list[FaultStep]:
    """Partitions (a minority cut from the majority, joined later, one at a time) and crashes (at
    most f = (n-1)//3 nodes down at once, each restarted later), all over before `fault_seconds`."""
    steps: list[FaultStep] = []
    if "partition" in faults and n >= 3:
        t = rng.uniform(0.2, 1.0)
        for _ in range(rng.randint(1, 2)):
            length = rng.uniform(0.5, 0.4 * fault_seconds)
            if t + length >= fault_seconds:
                break
            size = rng.randint(1, (n - 1) // 2)
            minority = frozenset(rng.sample(range(n), size))
            steps += [FaultStep(t, "partition", minority), FaultStep(t + length, "join", minority)]
            t += length + rng.uniform(0.2, 1.5)
    max_down = (n - 1) // 3
    crash_kinds = [k for k in ("crash", "wipe") if k in faults]
    if crash_kinds and max_down > 0:
        downs: list[tuple[float, float, int]] = []
        for _ in range(rng.randint(1, 3)):
            start = rng.uniform(0.2, fault_seconds * 0.8)
            end = min(start + rng.uniform(0.2, 0.4 * fault_seconds), fault_seconds - 0.01)
            overlapping = {node for s, e, node in downs if s < end and start < e}
            if end <= start or len(overlapping) >= max_down:
                continue
            node = rng.choice([i for i in range(n) if i not in overlapping])
            downs.append((start, end, node))
            kind = crash_kinds[0] if len(crash_kinds) == 1 else rng.choice(crash_kinds)
            steps += [FaultStep(start, kind, frozenset({node})), FaultStep(end, "restart", frozenset({node}))]
    steps.sort(key=lambda s: (s.at, s.kind))
    return steps
