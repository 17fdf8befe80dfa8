"""A layer's view: register services through the registry, drive the phase machine, gate on the mesh.

Runs the real daemon in-process (real embedded Redis) and stops it with a real SIGTERM."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import trio

from node.config import Settings
from node.runtime.daemon import run_daemon
from node.runtime.home import Home, init_home
from node.runtime.phases import Trigger
from node.runtime.service import NodeContext, ServiceRegistry


class PhaseDriver:
    """Stands for the trust and consensus layers: moves the node to phase `consensus` once ready."""

    name, kind = "driver", "async"

    def __init__(self, ctx: NodeContext) -> None:
        self.ctx = ctx

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        assert not self.ctx.mesh_ready.is_set()
        self.ctx.phases.fire(Trigger.CA_ISSUED)
        self.ctx.phases.fire(Trigger.CONSENSUS_JOINED)
        await trio.sleep_forever()


class Federated:
    """A federated component: starts only after the mesh is ready; then checks Redis and stops the node."""

    name, kind = "fed", "federated"

    def __init__(self, ctx: NodeContext, seen: dict[str, Any]) -> None:
        self.ctx, self.seen = ctx, seen

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        self.seen["phase_at_start"] = self.ctx.phases.phase.value
        task_status.started()
        keys = self.ctx.redis.keys
        with trio.fail_after(10):
            while True:
                text = await self.ctx.redis.try_call(lambda c: c.get(keys.startup_status))
                status = json.loads(text) if text else {}
                if (status.get("phase") == "consensus" and status.get("services", {}).get("fed") == "ready"
                        and status.get("status") == "ready"):  # every service up, not only this one
                    break
                await trio.sleep(0.05)
        self.seen["status"] = status
        self.seen["mesh_ready"] = await self.ctx.redis.call(lambda c: c.smembers(keys.mesh_ready))
        os.kill(os.getpid(), signal.SIGTERM)
        await trio.sleep_forever()


def test_layer_registers_services_and_drives_phases(tmp_path: Path) -> None:
    home = Home(tmp_path / "home")
    node_id = init_home(home, "alpha.example").node_id
    seen: dict[str, Any] = {}

    def hook(registry: ServiceRegistry) -> None:
        registry.add("driver", "async", PhaseDriver)
        registry.add("fed", "federated", lambda ctx: Federated(ctx, seen))

    settings = Settings(
        home=home.root, origin="alpha.example", heartbeat_interval=0.2, log_format="plain", plugins="none"
    )
    assert run_daemon(settings, hook) == 0
    assert seen["phase_at_start"] == "consensus"
    assert seen["status"]["node"] == node_id and seen["status"]["status"] == "ready"
    assert seen["status"]["transition"] == {"from": "ca-issued", "to": "consensus", "trigger": "consensus-joined"}
    assert seen["mesh_ready"] == {node_id}
    assert not home.pid_file.exists() and not home.is_locked()
