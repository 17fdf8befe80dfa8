"""Ancestry, see and strongly-see from per-event coordinates, exact in the presence of forks.

Without forks every creator's events form one chain, so `la`/`fd` index comparisons answer every
question in O(1) per creator.  A creator that forked (two events with one index) is tracked with
explicit "tips" (its maximal events among an event's ancestors); only questions about such a
creator walk its self-parent chain, and a forker's cost is bounded by the two-branches rule.
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import compress
from operator import ge, ne

from node.consensus.records import NO_DESCENDANT, EventRecord


class Ancestry:
    def __init__(self) -> None:
        self.events: dict[bytes, EventRecord] = {}
        self.chains: list[dict[int, list[EventRecord]]] = []  # column -> index -> (at most 2) events
        self.forkers: set[int] = set()

    # -- forks ------------------------------------------------------------------------------------

    def tips(self, x: EventRecord, col: int) -> tuple[EventRecord, ...]:
        if x.tips is not None and col in x.tips:
            return x.tips[col]
        top = x.la[col]
        if top < 0:
            return ()
        slot = self.chains[col].get(top)
        # Events inserted before `col` forked only ever saw its first (canonical) branch.
        return (slot[0],) if slot else ()

    def self_descends(self, a: EventRecord, b: EventRecord) -> bool:
        """b is a or on a's self-parent chain (same creator)."""
        cur: EventRecord | None = a
        while cur is not None and cur.index > b.index:
            cur = self.events.get(cur.sp) if cur.sp is not None else None
        return cur is b

    def _reduce_tips(self, candidates: list[EventRecord]) -> tuple[EventRecord, ...]:
        unique: list[EventRecord] = []
        for cand in candidates:
            if all(cand is not u for u in unique):
                unique.append(cand)
        kept = [
            t for t in unique
            if not any(o is not t and o.index >= t.index and self.self_descends(o, t) for o in unique)
        ]
        return tuple(kept)

    def compute_fork_view(self, rec: EventRecord, parents: list[EventRecord]) -> None:
        """Set `rec.tips` and `rec.forks_seen` (only called once some creator has forked)."""
        seen: set[int] = set()
        for p in parents:
            seen |= p.forks_seen
        tips: dict[int, tuple[EventRecord, ...]] = {}
        for col in self.forkers:
            cands: list[EventRecord] = [rec] if rec.col == col else []
            for p in parents:
                cands.extend(self.tips(p, col))
            if not cands:
                continue
            reduced = self._reduce_tips(cands)
            tips[col] = reduced
            if len(reduced) > 1:
                seen.add(col)
        rec.tips = tips
        rec.forks_seen = frozenset(seen)

    # -- coordinates ------------------------------------------------------------------------------

    def update_first_descendants(self, z: EventRecord, self_parent: EventRecord | None) -> None:
        """Give every ancestor of z that has no descendant by z's creator yet the index of z."""
        zcol, zidx = z.col, z.index
        z.fd[zcol] = zidx
        # Where z's last ancestor is its self-parent's, the self-parent already did the work.
        la = z.la
        forkers = self.forkers
        if self_parent is None or forkers:
            columns: Iterable[int] = range(len(la))
        else:  # only the columns where z's last ancestor moved past its self-parent's
            columns = compress(range(len(la)), map(ne, la, self_parent.la))
        for col in columns:
            top = la[col]
            if top < 0 or col == zcol:
                continue
            if col in forkers:
                for tip in self.tips(z, col):
                    cur: EventRecord | None = tip
                    while cur is not None and cur.fd[zcol] == NO_DESCENDANT:
                        cur.fd[zcol] = zidx
                        cur = self.events.get(cur.sp) if cur.sp is not None else None
                continue
            chain = self.chains[col]
            k = top
            while k >= 0:
                slot = chain.get(k)
                if slot is None:
                    break
                r = slot[0]
                if r.fd[zcol] != NO_DESCENDANT:
                    break
                r.fd[zcol] = zidx
                k -= 1

    # -- relations --------------------------------------------------------------------------------

    def ancestor(self, x: EventRecord, y: EventRecord) -> bool:
        """y is x or reachable from x through parents."""
        col = y.col
        if x.la[col] < y.index:
            return False
        if col not in self.forkers:
            return True
        return any(t.index >= y.index and self.self_descends(t, y) for t in self.tips(x, col))

    def see(self, x: EventRecord, y: EventRecord) -> bool:
        return y.col not in x.forks_seen and self.ancestor(x, y)

    def strongly_see(self, x: EventRecord, y: EventRecord, cols: list[int], needed: int) -> bool:
        """x sees y through at least `needed` members of `cols` (the columns of a peer set)."""
        if not self.forkers:
            la, fd = x.la, y.fd
            if la[y.col] < y.index:
                return False
            if len(cols) == len(la):  # the peer set is every known creator: count in C
                seen_through: int = sum(map(ge, la, fd))
                return seen_through >= needed
            count = 0
            for c in cols:
                if la[c] >= fd[c]:
                    count += 1
            return count >= needed
        if not self.see(x, y):
            return False
        count = 0
        for c in cols:
            if c in x.forks_seen:
                continue  # a member x knows to be a forker does not count
            if c not in self.forkers:
                if x.la[c] >= y.fd[c]:
                    count += 1
                continue
            tips = self.tips(x, c)
            if tips and self.ancestor(tips[0], y):
                count += 1
        return count >= needed
