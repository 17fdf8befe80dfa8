"""Registers the trust service with the daemon (found by `node.runtime.service.load_plugins`).

`TrustService` watches the phase deadlines from the node's start (alerts: an error log line, the
`node_phase_deadline_missed_total` counter, this service's state `missed` in the Redis startup
status, and `phase_deadlines` in the engine's trust status; a late `ca-issued` also makes the node
ask its CA again at once), and, once the engine runs, the certificate transparency log
(`ChainRecorder`).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import structlog
import trio

from node.engine.access import engine_of
from node.runtime.phase_deadlines import Missed, PhaseDeadlines, deadlines_from
from node.runtime.phases import Phase, PhaseChange
from node.runtime.service import NodeContext, ServiceRegistry
from node.trust.chain_service import ChainRecorder

if TYPE_CHECKING:
    from prometheus_client import Counter

    from node.engine.service import ConsensusEngine

log = structlog.get_logger("trust")

SERVICE_NAME = "trust"


class TrustService:
    name = SERVICE_NAME
    kind = "async"

    def __init__(self, ctx: NodeContext, clock: Any = time.monotonic) -> None:
        self.ctx = ctx
        self._clock = clock
        self.deadlines = PhaseDeadlines(clock(), deadlines_from(ctx.settings))
        if ctx.phases.phase is not Phase.SELF_SIGNED:
            self.deadlines.reached(ctx.phases.phase, clock())
        ctx.phases.observe(self._phase_changed)
        self.engine: ConsensusEngine | None = None
        self.recorder: ChainRecorder | None = None
        self._counter: Counter | None = None

    async def run(self, *, task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._watch_deadlines)
            engine = self.engine = await engine_of(self.ctx)
            if self.deadlines.current is None:  # the endpoint runs: the node is (at least) self-signed
                self._reached(Phase.SELF_SIGNED)
            self._attach(engine)
            if self.recorder is not None:
                nursery.start_soon(self.recorder.run)

    def _attach(self, engine: ConsensusEngine) -> None:
        if engine.trust is not None:
            engine.trust.extra_status = self.describe
        if engine.view is not None:
            from prometheus_client import Counter

            self._counter = Counter(
                "node_phase_deadline_missed", "Phase deadlines missed (each alert)", ["phase"],
                registry=engine.view.metrics.registry,
            )
        if engine.trust is not None and engine.chain is not None and engine.endpoint is not None:
            self.recorder = ChainRecorder(engine)
            self.recorder.attach()

    # -- deadlines -----------------------------------------------------------------------------------

    def _phase_changed(self, change: PhaseChange) -> None:
        self._reached(change.new)

    def _reached(self, phase: Phase) -> None:
        cleared = self.deadlines.reached(phase, self._clock())
        if cleared is not None:
            log.warning("phase reached after its deadline", phase=phase.value,
                        after_s=self.deadlines.reached_after.get(phase), deadline_s=cleared.deadline_s)
            self.ctx.status.set_service(self.name, "ready")

    async def _watch_deadlines(self) -> None:
        while True:
            await trio.sleep(min(self.deadlines.next_poll(self._clock()), 1.0))
            missed = self.deadlines.poll(self._clock())
            if missed is None:
                continue
            try:
                self._alert(missed)
            except Exception as exc:  # an alert must never take the node down
                log.error("phase deadline alert failed", error=repr(exc))

    def _alert(self, missed: Missed) -> None:
        log.error(
            "phase deadline missed", phase=missed.phase.value, waited_s=round(missed.waited_s, 3),
            deadline_s=missed.deadline_s, alert=missed.alert, next_alert_in_s=round(missed.next_alert_s, 3),
            now_in=self.ctx.phases.phase.value,
        )
        self.ctx.status.set_service(self.name, "missed")
        if self._counter is not None:
            self._counter.labels(missed.phase.value).inc()
        engine = self.engine
        if missed.phase is Phase.CA_ISSUED and engine is not None and engine.trust is not None:
            manager = engine.trust.manager
            if manager is not None:
                manager.retry_now()  # do not wait out the backoff: ask the CA again now

    def describe(self) -> dict[str, Any]:
        deadlines = self.deadlines
        out: dict[str, Any] = {
            "phase_deadlines": {
                "waiting_for": deadlines.waiting_for.value if deadlines.waiting_for else None,
                "deadlines_s": {p.value: s for p, s in deadlines.deadlines.items()},
                "reached_after_s": {p.value: s for p, s in deadlines.reached_after.items()},
                "missed_total": deadlines.missed_total,
                "late": deadlines.late.to_obj() if deadlines.late else None,
            }
        }
        if self.recorder is not None:
            out["transparency"] = self.recorder.describe()
        return out


def register(registry: ServiceRegistry) -> None:
    registry.add(SERVICE_NAME, "async", TrustService)
