"""Ancestry, see and strongly-see from per-event coordinates, exact in the presence of forks.

Without forks every creator's events form one chain, so `la` index comparisons answer every
question in O(1) per creator (strongly-see: x's newest ancestor by c, looked up by `la[c]` in c's
chain, has y as ancestor).  A creator that forked (two events with one index) is tracked with
explicit "tips" (its maximal events among an event's ancestors); only questions about such a
creator walk its self-parent chain, and only at indices where it forked (below those, one event
per index: self-descent is an index comparison).  A forker's cost is bounded by the branches
stored per index (`hashgraph.MAX_BRANCHES`): an event's tips are merged from its parents' tips,
comparing only the tips one parent has and the other lacks.
"""

from __future__ import annotations

from node.consensus.records import NO_DESCENDANT, EventRecord


class Ancestry:
    def __init__(self) -> None:
        self.events: dict[bytes, EventRecord] = {}
        self.chains: list[dict[int, list[EventRecord]]] = []  # column -> index -> events (several: a fork)
        self.forkers: set[int] = set()
        self.fork_indices: dict[int, set[int]] = {}  # forker column -> indices holding several events

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
        forked = self.fork_indices.get(b.col)
        if forked is None or b.index not in forked:
            return True  # never two events at b's index: every later event of the creator descends from b
        cur: EventRecord | None = a
        while cur is not None and cur.index > b.index:
            cur = self.events.get(cur.sp) if cur.sp is not None else None
        return cur is b

    def _merge_tips(
        self, a: tuple[EventRecord, ...], b: tuple[EventRecord, ...]
    ) -> tuple[EventRecord, ...]:
        """The union of two reduced tip sets, reduced.  Neither set has an element above another
        of its own, so only elements of one set that the other lacks are compared (few, and mostly
        recent: cheap self-descent tests)."""
        if not b or a == b:
            return a
        if not a:
            return b
        only_a = [t for t in a if t not in b]
        only_b = [t for t in b if t not in a]
        if not only_b:
            return a
        if not only_a:
            return b
        below: set[bytes] = set()
        for low_side, high_side in ((only_a, only_b), (only_b, only_a)):
            for t in low_side:
                if any(o.index > t.index and self.self_descends(o, t) for o in high_side):
                    below.add(t.hash)
        return tuple(t for t in a if t.hash not in below) + tuple(t for t in only_b if t.hash not in below)

    def compute_fork_view(self, rec: EventRecord, sp: EventRecord | None, op: EventRecord | None) -> None:
        """Set `rec.tips` and `rec.forks_seen` (only called once some creator has forked)."""
        seen: set[int] = set()
        for p in (sp, op):
            if p is not None:
                seen |= p.forks_seen
        tips: dict[int, tuple[EventRecord, ...]] = {}
        for col in self.forkers:
            merged = self._merge_tips(
                self.tips(sp, col) if sp is not None else (), self.tips(op, col) if op is not None else ()
            )
            if rec.col == col:
                # rec is above its self-parent and whatever is below that; a reduced set holds at
                # most one event of rec's chain, normally sp itself.
                if sp is not None and sp in merged:
                    merged = tuple(t for t in merged if t is not sp)
                else:
                    merged = tuple(t for t in merged if not self.self_descends(rec, t))
                merged = (rec, *merged)
            if not merged:
                continue
            tips[col] = merged
            if len(merged) > 1:
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

