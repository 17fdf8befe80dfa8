"""Ancestry, see and strongly-see from per-event coordinates, exact in the presence of forks.

Without forks every creator's events form one chain, so `la` index comparisons answer every
question in O(1) per creator (strongly-see: x's newest ancestor by c, looked up by `la[c]` in c's
chain, has y as ancestor).  A creator that forked (two events with one index) is tracked with
explicit "tips" (its maximal events among an event's ancestors); only questions about such a
creator walk its self-parent chain, and a forker's cost is bounded by the two-branches rule.
"""

from __future__ import annotations

from node.consensus.records import NO_DESCENDANT, EventRecord


def _index_desc(rec: EventRecord) -> int:
    return -rec.index


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
        if a.index < b.index:
            return False
        slot = self.chains[b.col].get(b.index)
        if slot is not None and len(slot) == 1 and slot[0] is b:
            return True  # the only event at b's index: every later event of the creator descends from it
        cur: EventRecord | None = a
        while cur is not None and cur.index > b.index:
            cur = self.events.get(cur.sp) if cur.sp is not None else None
        return cur is b

    def _reduce_tips(self, candidates: list[EventRecord]) -> tuple[EventRecord, ...]:
        """The candidates (events of one creator) that are no self-ancestor of another one, in
        first-seen order.  One walk down from each candidate, highest first, each stopping where
        an earlier walk passed: linear in the events between the candidates, not quadratic."""
        unique: dict[bytes, EventRecord] = {}
        for cand in candidates:
            unique.setdefault(cand.hash, cand)
        if len(unique) == 1:
            return tuple(unique.values())
        low = min(c.index for c in unique.values())
        passed: set[bytes] = set()
        events = self.events
        for top in sorted(unique.values(), key=_index_desc):
            if top.hash in passed:
                continue  # below a higher candidate: its chain was walked already
            h = top.sp
            while h is not None and h not in passed:
                passed.add(h)
                rec = events.get(h)
                if rec is None or rec.index <= low:
                    break
                h = rec.sp
        return tuple(c for h, c in unique.items() if h not in passed)

    def compute_fork_view(self, rec: EventRecord, parents: list[EventRecord]) -> None:
        """Set `rec.tips` and `rec.forks_seen` (only called once some creator has forked)."""
        seen: set[int] = set()
        for p in parents:
            seen |= p.forks_seen
        tips: dict[int, tuple[EventRecord, ...]] = {}
        for col in self.forkers:
            views = [t for t in (self.tips(p, col) for p in parents) if t]
            if rec.col != col and (not views or len(views) == 1 or views[0] == views[1]):
                if not views:
                    continue
                reduced = views[0]  # one parent's view, already reduced: nothing to merge
            else:
                cands: list[EventRecord] = [rec] if rec.col == col else []
                for view in views:
                    cands.extend(view)
                reduced = self._reduce_tips(cands)
            tips[col] = reduced
            if len(reduced) > 1:
                seen.add(col)
        rec.tips = tips
        rec.forks_seen = frozenset(seen)

    # -- coordinates ------------------------------------------------------------------------------

    def last_record(self, x: EventRecord, col: int) -> EventRecord | None:
        """x's newest ancestor by column `col` (the first branch's, for a forker x sees one tip of)."""
        if col == x.col:
            return x  # (x may not be in its chain yet: its round is being computed)
        if col in self.forkers:
            tips = self.tips(x, col)
            return tips[0] if tips else None
        slot = self.chains[col].get(x.la[col])
        return slot[0] if slot else None  # None: no ancestor by col, or it was pruned

    def first_descendants(self, y: EventRecord) -> list[int]:
        """Per column, the lowest index of an event that has y as ancestor (NO_DESCENDANT: none).

        Not kept up to date per event (that cost O(n) per insertion); computed when asked."""
        out = [NO_DESCENDANT] * len(self.chains)
        out[y.col] = y.index
        for col, chain in enumerate(self.chains):
            if col == y.col:
                continue
            for index in sorted(chain):
                if any(self.ancestor(e, y) for e in chain[index]):
                    out[col] = index
                    break
        return out

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
        """x sees y through at least `needed` members of `cols` (the columns of a peer set): for that
        many members c, x's newest ancestor by c has y as ancestor."""
        return self.strongly_seen(x, [y], cols, needed) == [y]

    def strongly_seen(
        self, x: EventRecord, ys: list[EventRecord], cols: list[int], needed: int
    ) -> list[EventRecord]:
        """The events of `ys` that x strongly sees; x's newest ancestors are looked up once for all."""
        forks_seen = x.forks_seen
        lasts = []
        for c in cols:
            if c in forks_seen:
                continue  # a member x knows to be a forker does not count
            last = self.last_record(x, c)
            if last is not None:
                lasts.append(last)
        if len(lasts) < needed:
            return []
        out = []
        for y in ys:
            if not self.see(x, y):
                continue
            count = 0
            for last in lasts:
                if self.ancestor(last, y):
                    count += 1
                    if count >= needed:
                        out.append(y)
                        break
        return out

