"""`node healer` and `node sentinel`: the heartbeat watchers, as standalone processes.

They follow the truth in Redis (channels, intervals) and publish on `healer:alerts`; the daemon
runs the same watchers inside itself.
"""

from __future__ import annotations

import os

import click
import trio

from node.runtime.cli_support import OneLineCommand, redis_options, require_redis_target, settings_for
from node.runtime.logs import configure_logging
from node.runtime.phases import PhaseMachine
from node.runtime.redis_bridge import RedisBridge
from node.runtime.redis_keys import RedisKeys
from node.runtime.service import Service
from node.runtime.status import NodeStatus
from node.runtime.supervisor import Supervisor
from node.runtime.truth import Component, default_truth
from node.runtime.truth_holder import TruthHolder
from node.runtime.truth_service import TruthService
from node.runtime.watchers import make_healer, make_sentinel


async def _run_watcher(which: str, url: str, namespace: str, interval: float) -> None:
    bridge = RedisBridge(url, RedisKeys(namespace))
    holder = TruthHolder(default_truth([], interval), "default")
    follower = TruthService(bridge, holder, writer=False)
    watcher = make_healer(bridge, holder) if which == "healer" else make_sentinel(bridge, holder)
    status = NodeStatus(f"{which}-{os.getpid()}", PhaseMachine())
    plan: list[tuple[Component, Service | None]] = [(Component(which, "async"), watcher)]
    supervisor = Supervisor(
        plan=plan,
        grace=10.0,
        bridge=bridge,
        status=status,
        interval_for=lambda svc: holder.interval_for(svc, interval),
        mesh_ready=trio.Event(),
    )
    await bridge.wait_up(2.0)
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(bridge.run)
            await nursery.start(follower.run)  # reads the truth; not a hosted service: no heartbeat of its own
            await nursery.start(supervisor.run)
    finally:
        bridge.close()


def _command(which: str) -> click.Command:
    @click.command(which, cls=OneLineCommand)
    @redis_options
    @click.option("--log-format", type=click.Choice(["auto", "plain", "json"]))
    @click.option("--log-level")
    def command(
        home: str | None, redis_url: str | None, namespace: str | None, log_format: str | None, log_level: str | None
    ) -> None:
        loaded = settings_for(
            {
                "home": home,
                "redis_url": redis_url,
                "namespace": namespace,
                "log_format": log_format,
                "log_level": log_level,
            }
        )
        url, namespace = require_redis_target(loaded)
        configure_logging(loaded.settings.log_format, loaded.settings.log_level)
        trio.run(_run_watcher, which, url, namespace, loaded.settings.heartbeat_interval)

    command.help = (
        "Watch the heartbeat channels named in the truth; publish heartbeat_miss/heartbeat_ok on healer:alerts."
        if which == "healer"
        else "Watch the healer's heartbeat; publish healer_miss/healer_ok on healer:alerts."
    )
    return command


COMMANDS = [_command("healer"), _command("sentinel")]
