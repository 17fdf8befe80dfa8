"""The node daemon: lock the home, build the services, run them under one supervisor, stop on a signal.

Built-in components, in default start order: `redis` (blocking: the embedded server or the link to
an external one; always first), `truth`, `node` (presence and status), `healer`, `sentinel`
(async).  Layers add theirs through `node.<layer>.plugin.register(registry)` (see service.py).
SIGINT/SIGTERM cancel the services (graceful, exit 0 within 5 s); a second signal exits at once.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Awaitable, Callable

import trio

from node.config import Settings
from node.crypto import PrivateKey
from node.errors import NodeError
from node.runtime.embedded_redis import RedisService
from node.runtime.home import Home, daemon_lock
from node.runtime.logs import get_logger
from node.runtime.node_service import NodeService
from node.runtime.phases import Phase, PhaseChange, PhaseMachine
from node.runtime.redis_bridge import RedisBridge
from node.runtime.redis_keys import RedisKeys
from node.runtime.service import NodeContext, Service, ServiceRegistry, load_plugins
from node.runtime.status import NodeStatus
from node.runtime.supervisor import Supervisor
from node.runtime.truth import Component, Truth, default_truth, load_file
from node.runtime.truth_holder import TruthHolder
from node.runtime.truth_service import TruthService
from node.runtime.watchers import make_healer, make_sentinel

log = get_logger("runtime.daemon")
SHUTDOWN_DEADLINE = 4.5  # seconds after the first signal; then the process exits anyway


def _truth_service(ctx: NodeContext) -> TruthService:
    """Blocking (wait for a real truth before later components) by setting or by the truth's own startup list."""
    listed = ctx.truth.current.component("truth")
    blocking = ctx.settings.wait_for_truth or (listed is not None and listed.kind == "blocking")
    return TruthService(ctx.redis, ctx.truth, kind="blocking" if blocking else "async")


def builtin_registry() -> ServiceRegistry:
    registry = ServiceRegistry()
    registry.add(
        "redis", "blocking", lambda ctx: RedisService(ctx.redis, ctx.home, embedded=ctx.settings.redis_url is None)
    )
    registry.add("truth", "async", _truth_service)
    registry.add(
        "node",
        "async",
        lambda ctx: NodeService(
            ctx.redis,
            ctx.status,
            ctx.settings.heartbeat_interval,
            {"origin": ctx.settings.origin or "", "listen": ctx.settings.listen, "api": ctx.settings.api},
            ctx.mesh_ready,
        ),
    )
    registry.add("healer", "async", lambda ctx: make_healer(ctx.redis, ctx.truth, ctx.node_id))
    registry.add("sentinel", "async", lambda ctx: make_sentinel(ctx.redis, ctx.truth, ctx.node_id))
    return registry


def initial_truth(home: Home, registry: ServiceRegistry, settings: Settings) -> tuple[Truth, str]:
    if home.truth_file.exists():
        return load_file(home.truth_file), "home file"
    return default_truth(registry.names(), settings.heartbeat_interval), "default"


def start_plan(truth: Truth, registry: ServiceRegistry, settings: Settings) -> list[tuple[Component, str]]:
    """(component, kind) in start order: `redis` first, then the truth's list, then other registered services."""
    plan: list[Component] = [Component("redis", "blocking")]
    plan += [c for c in truth.components if c.name != "redis"]
    listed = {c.name for c in plan}
    plan += [Component(r.name, r.kind) for r in registry if r.name not in listed]
    if settings.wait_for_truth:
        plan = [Component(c.name, "blocking") if c.name == "truth" else c for c in plan]
    return [(c, c.kind) for c in plan]


class Daemon:
    def __init__(self, settings: Settings, registry: ServiceRegistry | None = None) -> None:
        self.settings = settings
        self.home = Home(settings.home)
        self.registry = registry if registry is not None else builtin_registry()
        if registry is None:
            load_plugins(self.registry, settings.plugins)

    def run(self) -> int:
        """Blocking entry point for `node start`; returns the exit code."""
        key = self.home.load_key()
        truth, source = initial_truth(self.home, self.registry, self.settings)
        with daemon_lock(self.home):
            return trio.run(self._main, key, truth, source)

    async def _main(self, key: PrivateKey, truth: Truth, source: str) -> int:
        settings = self.settings
        phases = PhaseMachine()
        status = NodeStatus(key.fingerprint, phases)
        url = settings.redis_url or f"unix://{self.home.redis_socket}"
        bridge = RedisBridge(url, RedisKeys(settings.namespace))
        ctx = NodeContext(settings, self.home, key, phases, bridge, TruthHolder(truth, source), status)

        def on_phase(change: PhaseChange) -> None:
            log.info("phase", old=change.old.value, new=change.new.value, trigger=change.trigger.value)
            if phases.at_least(Phase.CONSENSUS):
                ctx.mesh_ready.set()

        phases.observe(on_phase)
        plan: list[tuple[Component, Service | None]] = []
        for component, _ in start_plan(truth, self.registry, settings):
            reg = self.registry.get(component.name)
            plan.append((component, reg.factory(ctx) if reg else None))
        supervisor = Supervisor(
            plan=plan,
            grace=truth.grace_timeout_sec,
            bridge=bridge,
            status=status,
            interval_for=lambda svc: ctx.truth.interval_for(svc, settings.heartbeat_interval),
            mesh_ready=ctx.mesh_ready,
        )
        log.info("node starting", node=key.fingerprint, origin=settings.origin, home=str(self.home.root), redis=url)
        services_scope = trio.CancelScope()
        try:
            async with trio.open_nursery() as root:

                async def graceful() -> None:
                    await supervisor.stop()
                    services_scope.cancel()

                await root.start(self._signals, graceful, status)
                if settings.log_format == "auto" and sys.stderr.isatty():
                    from node.runtime.statusline import run_status_line

                    root.start_soon(run_status_line, status)
                with services_scope:
                    async with trio.open_nursery() as services:
                        await services.start(supervisor.run)
                root.cancel_scope.cancel()
        finally:
            bridge.close()
        log.info("node stopped", node=key.fingerprint)
        return 0

    async def _signals(
        self, graceful: Callable[[], Awaitable[None]], status: NodeStatus, *, task_status: trio.TaskStatus[None]
    ) -> None:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            task_status.started()
            count = 0
            async with trio.open_nursery() as nursery:
                async for signum in signals:
                    count += 1
                    if count > 1:
                        print("second signal: exiting now", file=sys.stderr, flush=True)
                        os._exit(1)  # the embedded Redis dies with us (PDEATHSIG)
                    log.info("stopping", signal=signal.Signals(signum).name)
                    status.set_stopping()
                    nursery.start_soon(graceful)
                    nursery.start_soon(_force_exit_after, SHUTDOWN_DEADLINE)


async def _force_exit_after(seconds: float) -> None:
    await trio.sleep(seconds)
    print(f"shutdown took longer than {seconds:g} s: exiting now", file=sys.stderr, flush=True)
    os._exit(1)


def first_node_error(exc: BaseException) -> NodeError | None:
    """The first NodeError inside a (possibly nested) exception group."""
    if isinstance(exc, NodeError):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = first_node_error(inner)
            if found is not None:
                return found
    return None


def run_daemon(settings: Settings, hook: Callable[[ServiceRegistry], None] | None = None) -> int:
    registry = None
    if hook is not None:
        registry = builtin_registry()
        load_plugins(registry, settings.plugins)
        hook(registry)
    try:
        return Daemon(settings, registry).run()
    except BaseExceptionGroup as group:
        error = first_node_error(group)
        if error is not None:
            raise error from None
        raise
