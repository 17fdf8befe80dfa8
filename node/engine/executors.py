"""Running executor requests on this node when it sits on the elected committee.

Executing a block that opens an executor request (an action registered with `executors=True`)
emits an `ExecutorRequestOutput` on every node; only the committee members named in it run the
action's handler (`run_as_executor`, off the chain, over committed state) and submit their signed
response as an ordinary `/executors/respond` action.  Reconciliation, completion, failure and
reputation penalties then happen in block execution, identically on every node.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import structlog
import trio

from node.actions import BlockContext, ExecutorRequestOutput, run_as_executor
from node.actions.committee import committee_record, reputation_table
from node.actions.executors import RESPOND_PATH
from node.actions.model import ExecutorOutcomeOutput
from node.actions.state import Overlay

if TYPE_CHECKING:
    from node.engine.apply import AppliedBlock
    from node.engine.service import ConsensusEngine

log = structlog.get_logger("executors")

QUEUE_SIZE = 1_000  # requests waiting for our response; beyond it we stay silent (and are penalised)


class ExecutorRunner:
    def __init__(self, engine: ConsensusEngine) -> None:
        self.engine = engine
        self.public_key = engine.ctx.key.public
        self._send, self._receive = trio.open_memory_channel[tuple[Any, ExecutorRequestOutput]](QUEUE_SIZE)
        self.responded = 0
        self.dropped = 0
        self.outcomes = {"completed": 0, "failed": 0}

    def block_applied(self, applied: AppliedBlock) -> None:
        """Block listener (Trio thread): queue the requests addressed to us."""
        for output in applied.result.outputs:
            if isinstance(output, ExecutorOutcomeOutput):
                self.outcomes["completed" if output.ok else "failed"] += 1
            if not isinstance(output, ExecutorRequestOutput) or self.public_key not in output.committee:
                continue
            try:
                self._send.send_nowait((applied.block, output))
            except trio.WouldBlock:
                self.dropped += 1
                log.warning("executor queue full: request left unanswered", request=output.request_id.hex()[:16])

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        async for block, request in self._receive:
            await self._respond(block, request)

    async def _respond(self, block: Any, request: ExecutorRequestOutput) -> None:
        engine = self.engine
        assert engine.chain is not None
        context = BlockContext(block.index, block.timestamp, engine.origin, committee=request.committee)
        response = await trio.to_thread.run_sync(
            run_as_executor, request.envelope, engine.chain.state, context, self.public_key
        )
        engine.submit_node_action(RESPOND_PATH, response.to_args())
        self.responded += 1
        log.debug("executor response submitted", request=request.request_id.hex()[:16])

    def describe(self) -> dict[str, Any]:
        """`GET /executors`: the committee in force (from state), reputations, and this node's share."""
        engine = self.engine
        record = committee_record(Overlay(engine.chain.state)) if engine.chain is not None else None
        committee = [] if record is None else [m.hex() for m in record.get("committee", [])]
        members = len(engine.genesis.members)
        return {
            "round": None if record is None else record.get("round"),
            "block": None if record is None else record.get("block"),
            "seed": None if record is None else record["seed"].hex(),
            "committee": committee,
            "default_size": math.floor(2 * members / 3) + 1,
            "reputation": reputation_table(Overlay(engine.chain.state)) if engine.chain is not None else {},
            "this_node": {
                "in_committee": self.public_key.hex() in committee,
                "responses_submitted": self.responded,
                "requests_dropped": self.dropped,
            },
            "outcomes_seen": dict(self.outcomes),
        }
