"""The executor committee and the reputation table, kept in state.

The consensus layer puts an election seed into the block of every election round (a hash of that
round's famous witnesses, unknown before the round was decided).  Executing that block draws the
committee here, from the seed, the peer set that decided the block, and the reputation table; and
every committed `ReputationPenalty` lowers a member's weight.  All of it is state, so every node
derives the same committee, and a restart or a node catching up from blocks derives it again.
"""

from __future__ import annotations

from typing import Any

from node.actions.model import BlockContext, Output, ReputationPenalty
from node.actions.state import Overlay
from node.consensus.election import Reputation, elect

COMMITTEE_KEY = b"meta/committee"
REPUTATION_KEY = b"meta/reputation"


def committee_record(state: Overlay) -> dict[str, Any] | None:
    record = state.get_obj(COMMITTEE_KEY)
    return record if isinstance(record, dict) else None


def current_committee(state: Overlay) -> tuple[bytes, ...]:
    record = committee_record(state)
    if record is None:
        return ()
    members = record.get("committee")
    return tuple(m for m in members if isinstance(m, bytes)) if isinstance(members, list) else ()


def _reputation(state: Overlay) -> Reputation:
    return Reputation.from_obj(state.get_obj(REPUTATION_KEY) or {})


def hold_election(state: Overlay, context: BlockContext) -> tuple[bytes, ...]:
    """Draw the committee when the block carries an election seed; return the committee in force."""
    if context.election is None or not context.members:
        return current_committee(state)
    rnd, seed = context.election
    reputation = _reputation(state)
    committee = elect(sorted(context.members), seed, reputation, context.executor_count)
    reputation.recover()  # penalised members earn weight back, one election at a time
    state.put_obj(REPUTATION_KEY, reputation.to_obj())
    state.put_obj(COMMITTEE_KEY, {"round": rnd, "seed": seed, "block": context.index, "committee": list(committee)})
    return committee


def apply_penalties(state: Overlay, outputs: list[Output]) -> None:
    """Lower the weight of executors whose committed responses were missing or wrong."""
    penalties = [o for o in outputs if isinstance(o, ReputationPenalty)]
    if not penalties:
        return
    reputation = _reputation(state)
    for penalty in penalties:
        reputation.penalise(penalty.executor, penalty.reason)
    state.put_obj(REPUTATION_KEY, reputation.to_obj())


def reputation_table(state: Overlay) -> dict[str, int]:
    """Member (hex public key) -> weight, for the API; members never penalised are absent (full weight)."""
    return {member.hex(): weight for member, weight in sorted(_reputation(state).to_obj().items())}
