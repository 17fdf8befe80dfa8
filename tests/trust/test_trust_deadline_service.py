"""The trust service's phase deadlines on a mock clock: alert, status `missed`, retry, clear."""

from types import SimpleNamespace

import trio
import trio.testing

from node.engine.access import publish_engine
from node.runtime.phases import PhaseMachine, Trigger
from node.runtime.status import NodeStatus
from node.trust.plugin import TrustService


class Manager:
    def __init__(self) -> None:
        self.retries = 0

    def retry_now(self) -> None:
        self.retries += 1


def _ctx(deadlines: str):
    phases = PhaseMachine()
    return SimpleNamespace(
        phases=phases, status=NodeStatus("n0", phases), extras={},
        settings=SimpleNamespace(phase_deadlines=deadlines),
    )


async def test_missed_deadlines_alert_with_backoff_retry_and_clear(autojump_clock: trio.testing.MockClock) -> None:
    ctx = _ctx("self-signed=1,ca-issued=2,consensus=5")
    service = TrustService(ctx, clock=trio.current_time)
    ctx.status.set_service("trust", "ready", "async")
    manager = Manager()
    engine = SimpleNamespace(trust=SimpleNamespace(manager=manager, extra_status=dict), view=None, chain=None,
                             endpoint=None)
    async with trio.open_nursery() as nursery:
        await nursery.start(service.run)
        await trio.sleep(1.5)  # no engine yet: the self-signed deadline (1 s) is missed
        assert service.deadlines.missed_total == 1 and ctx.status.services["trust"] == "missed"
        assert ctx.status.overall == "degraded"
        publish_engine(ctx, engine)
        await trio.sleep(0.1)
        assert ctx.status.services["trust"] == "ready" and service.deadlines.late is None
        await trio.sleep(2.0)  # ca-issued due 2 s after self-signed: alert and ask the CA again at once
        assert manager.retries == 1 and service.deadlines.late.phase.value == "ca-issued"
        await trio.sleep(3.0)  # the next alert comes after a doubled pause (4 s), not before
        assert manager.retries == 1
        await trio.sleep(1.5)
        assert manager.retries == 2
        ctx.phases.fire(Trigger.CA_ISSUED)
        ctx.phases.fire(Trigger.CONSENSUS_JOINED)
        assert ctx.status.services["trust"] == "ready"
        described = engine.trust.extra_status()["phase_deadlines"]
        assert described["missed_total"] == 3 and described["waiting_for"] is None
        assert set(described["reached_after_s"]) == {"self-signed", "ca-issued", "consensus"}
        await trio.sleep(1000)
        assert service.deadlines.missed_total == 3  # nothing left to wait for: no more alerts
        nursery.cancel_scope.cancel()
