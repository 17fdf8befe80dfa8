"""End-of-run invariants over the chains the monitor copied from every node.

- agreement: every node of an origin has the same block hash and state hash at every index
  (the state hash as stored by each node, read from `/block/{i}`, besides the block body's);
- convergence: once the load stops, every node of an origin reaches the latest block any of them
  had when the chains settled (an origin may go on making blocks while idle, e.g. election blocks
  or membership ticks, so equal lengths at one later instant would be a race);
- no loss: every action a node acknowledged (202, or 200 with its receipt) is in every chain;
- no double application: no action id appears twice in one chain;
- no forkers: no node reports fork evidence against an (honest) member;
- with a byzantine member: every honest node holds fork evidence against it (and against no one
  else), and what each honest node did against it (penalties, eviction, revocation, from the
  node's log) is reported.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import httpx
import trio

from simulations.local_monitor import Monitor, NodeWatch

STATE_HASH_SAMPLE = 400  # indices whose stored state hash is read from every node


def origin_watches(monitor: Monitor, origin: str) -> list[NodeWatch]:
    return [w for w in monitor.watches.values() if w.node.origin == origin]


def settled(monitor: Monitor, acked: dict[str, set[str]]) -> bool:
    for origin, ids in acked.items():
        watches = origin_watches(monitor, origin)
        if not all(w.reachable for w in watches):
            return False
        if len({w.latest_block for w in watches}) != 1 or any(len(w.chain) != w.latest_block + 1 for w in watches):
            return False
        if not ids <= {a for row in watches[0].chain for a in row.action_ids}:
            return False
    return True


async def settle(monitor: Monitor, acked: dict[str, set[str]], within: float) -> float | None:
    """Seconds until every origin converged with all acknowledged actions committed, or None."""
    start = trio.current_time()
    with trio.move_on_after(within):
        while True:
            await monitor.tick()
            if settled(monitor, acked):
                return trio.current_time() - start
            await trio.sleep(0.5)
    return None


def sample_indices(common: int) -> list[int]:
    if common <= STATE_HASH_SAMPLE:
        return list(range(common))
    step = max(1, common // (STATE_HASH_SAMPLE // 2))
    return sorted(set(range(0, common, step)) | set(range(common - STATE_HASH_SAMPLE // 2, common)))


async def stored_state_hashes(client: httpx.AsyncClient, watch: NodeWatch, indices: list[int]) -> dict[int, str]:
    out: dict[int, str] = {}
    limit = trio.Semaphore(4)

    async def one(i: int) -> None:
        async with limit:
            response = await watch.get(client, f"/block/{i}")
            out[i] = str(response.json().get("state_hash"))

    async with trio.open_nursery() as nursery:
        for i in indices:
            nursery.start_soon(one, i)
    return out


def penalties_in_log(watch: NodeWatch, peer: str) -> dict[str, int]:
    """What this node did against `peer`, from its JSON log: warnings naming it as `peer` or `node`
    (gossip penalties, eviction for forking, its certificate revoked on the chain, cut off), by
    event and reason, with counts."""
    reasons: Counter[str] = Counter()
    try:
        lines = watch.node.log_path.read_text(errors="replace").splitlines()
    except OSError:
        return {}
    for line in lines:
        if peer not in line:
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if entry.get("level") in ("warning", "error") and peer in (entry.get("peer"), entry.get("node")):
            reason = str(entry.get("reason", "")).split(":")[0]
            reasons[f"{entry.get('event')}: {reason}" if reason else str(entry.get("event"))] += 1
    return dict(reasons)


def heights(monitor: Monitor) -> dict[str, int]:
    """Each origin's highest latest block now (taken when the chains settled)."""
    out: dict[str, int] = {}
    for w in monitor.watches.values():
        out[w.node.origin] = max(out.get(w.node.origin, -1), w.latest_block)
    return out


async def check_origin(client: httpx.AsyncClient, monitor: Monitor, origin: str, acked: set[str],
                       where: dict[str, Any], byzantine: str | None = None,
                       settled_at: int | None = None) -> dict[str, Any]:
    watches = origin_watches(monitor, origin)
    chains = {w.node.name: w.chain for w in watches}
    common = min(len(c) for c in chains.values())
    reference = watches[0].chain
    disagreements = []
    for w in watches[1:]:
        for i in range(common):
            a, b = reference[i], w.chain[i]
            if (a.hash, a.state_hash, a.action_ids) != (b.hash, b.state_hash, b.action_ids):
                disagreements.append({"index": i, "nodes": [watches[0].node.name, w.node.name]})
                break
    indices = sample_indices(common)
    stored: dict[str, dict[int, str]] = {}
    for w in watches:
        try:
            stored[w.node.name] = await stored_state_hashes(client, w, indices)
        except (httpx.HTTPError, ValueError) as exc:
            disagreements.append({"stored_state_hash_unreadable": w.node.name, "error": repr(exc)})
    names = list(stored)
    for name in names[1:]:
        for i in indices:
            if stored[name].get(i) != stored[names[0]].get(i):
                disagreements.append({"index": i, "stored_state_hash": [names[0], name]})
                break
    # Nobody here is malicious: any member another node calls a forker is a bug (it equivocated,
    # e.g. after a restart reused an event index), and two such members of four stop consensus.
    # A byzantine member is expected to be called a forker, by every honest node.
    forkers: dict[str, list[str]] = {}
    flagged: dict[str, Any] = {}
    for w in watches:
        try:
            stats = (await w.get(client, "/stats")).json()
        except (httpx.HTTPError, ValueError):
            continue
        named = [f for f in stats.get("forkers") or [] if f != byzantine]
        if named:
            forkers[w.node.name] = named + [f"evidence={stats.get('fork_evidence')}"]
        if byzantine is not None:
            flagged[w.node.name] = {"forker": byzantine in (stats.get("forkers") or []),
                                    "fork_evidence": stats.get("fork_evidence"),
                                    "penalised": penalties_in_log(w, byzantine)}
    missing = {}
    doubles = {}
    for w in watches:
        counts = Counter(a for row in w.chain for a in row.action_ids)
        lost = acked - set(counts)
        if lost:
            missing[w.node.name] = {"count": len(lost),
                                    "examples": [{"id": a, "acked_by_at_path": where.get(a)} for a in sorted(lost)[:5]]}
        twice = [a for a, c in counts.items() if c > 1]
        if twice:
            doubles[w.node.name] = {"count": len(twice), "examples": twice[:5]}
    return {
        "blocks": {name: len(c) for name, c in chains.items()},
        "common_prefix": common,
        "settled_at_block": settled_at,
        "converged": len({len(c) for c in chains.values()}) == 1 if settled_at is None
        else all(len(c) > settled_at for c in chains.values()),
        "stored_state_hashes_compared": len(indices),
        "agreement": not disagreements,
        "disagreements": disagreements[:10],
        "acknowledged": len(acked),
        "committed": len({a for row in reference for a in row.action_ids}),
        "no_loss": not missing,
        "missing": missing,
        "no_double_apply": not doubles,
        "double_applied": doubles,
        "no_forkers": not forkers,
        "forkers_seen_by": forkers,
        **({"byzantine": {"member": byzantine, "by_node": flagged,
                          "flagged_by_all": len(flagged) == len(watches) and all(v["forker"] for v in flagged.values()),
                          "penalised_by": sorted(n for n, v in flagged.items() if v["penalised"])}}
           if byzantine is not None else {}),
    }


async def check_all(client: httpx.AsyncClient, monitor: Monitor, acked: dict[str, set[str]],
                    where: dict[str, Any] | None = None, byzantine: dict[str, str] | None = None,
                    settled_at: dict[str, int] | None = None) -> dict[str, Any]:
    """`where` maps an action id to (node that acknowledged it, seconds into the load, path);
    `byzantine` maps an origin to the id of its byzantine member; `settled_at` an origin to the
    block every node must have reached (`heights` when the chains settled)."""
    byz, reached = byzantine or {}, settled_at or {}
    per_origin = {o: await check_origin(client, monitor, o, ids, where or {}, byz.get(o), reached.get(o))
                  for o, ids in acked.items()}
    out = {
        "origins": per_origin,
        "agreement": all(v["agreement"] for v in per_origin.values()),
        "converged": all(v["converged"] for v in per_origin.values()),
        "no_loss": all(v["no_loss"] for v in per_origin.values()),
        "no_double_apply": all(v["no_double_apply"] for v in per_origin.values()),
        "no_forkers": all(v["no_forkers"] for v in per_origin.values()),
    }
    if byz:
        out["byzantine_flagged"] = all(per_origin[o]["byzantine"]["flagged_by_all"] for o in byz if o in per_origin)
    return out
