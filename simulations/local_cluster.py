"""Real node processes on 127.0.0.1 for local simulations and benchmarks.

A `LocalCluster` writes a `node testnet`, starts one `python -m node start` per node (each with
its embedded Redis, which dies with its node through PDEATHSIG), and can crash, pause, resume,
restart and stop them.  Every process group it ever started is remembered, so `stop_all` leaves
nothing behind, also after a crash-restart or on Ctrl-C.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import trio

from node.commands.testnet import DEFAULT_ORIGINS, make_testnet

T = TypeVar("T")


async def poll_until(check: Callable[[], Awaitable[T | None]], *, within: float, every: float = 0.25) -> T | None:
    """`check()`'s first truthy answer, or None once `within` seconds pass (errors count as not yet)."""
    with trio.move_on_after(within):
        while True:
            try:
                result = await check()
                if result:
                    return result
            except (httpx.HTTPError, OSError, ValueError, KeyError):
                pass
            await trio.sleep(every)
    return None


def child_pids(pid: int) -> list[int]:
    """Direct children of `pid`, read from /proc (the embedded redis-server is one)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # The command name is in parentheses and may hold spaces: the ppid follows the last ')'.
        fields = stat[stat.rfind(")") + 2:].split()
        if len(fields) > 1 and int(fields[1]) == pid:
            found.append(int(entry))
    return found


def command_name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


@dataclass
class NodeProcess:
    origin: str
    node_id: str
    home: Path
    api_address: str
    listen: str
    proc: subprocess.Popen[bytes] | None = None
    paused: bool = False
    starts: int = 0
    groups: set[int] = field(default_factory=set)
    extra_args: list[str] = field(default_factory=list)  # e.g. `--peer ID@H:P` through a relay

    @property
    def api(self) -> str:
        return f"http://{self.api_address}"

    @property
    def name(self) -> str:
        return f"{self.origin.split('.')[0]}/{self.home.name}"

    @property
    def log_path(self) -> Path:
        return self.home / "node.log"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("NODE_")}
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "node", "start", "--origin", self.origin, "--home", str(self.home),
                 "--log-format", "json", *self.extra_args],
                stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
            )
        self.groups.add(self.proc.pid)  # start_new_session: the process group id is the pid
        self.paused = False
        self.starts += 1

    def send(self, sig: int) -> None:
        if self.running:
            assert self.proc is not None
            os.kill(self.proc.pid, sig)

    def kill9(self) -> None:
        """A crash: SIGKILL to the node process only (its Redis follows through PDEATHSIG)."""
        self.send(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(timeout=10)
        self.paused = False

    def pause(self) -> None:
        self.send(signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        self.send(signal.SIGCONT)
        self.paused = False

    def redis_pid(self) -> int | None:
        if not self.running:
            return None
        assert self.proc is not None
        for pid in child_pids(self.proc.pid):
            if command_name(pid).startswith("redis-server"):
                return pid
        return None

    def terminate(self) -> None:
        """SIGTERM once (a second SIGTERM makes the node exit at once, skipping its shutdown)."""
        if self.running:
            if self.paused:
                self.resume()
            self.send(signal.SIGTERM)

    def stop(self, timeout: float = 15.0, *, terminated: bool = False) -> int | None:
        """SIGTERM (after SIGCONT if paused), then SIGKILL; returns the exit code if it exited itself."""
        if not terminated:
            self.terminate()
        code = self.proc.poll() if self.proc is not None else None
        if self.running:
            assert self.proc is not None
            try:
                code = self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.send(signal.SIGKILL)
                self.proc.wait(timeout=10)
        self.reap_groups()
        return code

    def reap_groups(self) -> None:
        for group in list(self.groups):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(group, signal.SIGCONT)
                os.killpg(group, signal.SIGKILL)
            self.groups.discard(group)

    def log_tail(self, lines: int = 20) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


@dataclass
class LocalCluster:
    root: Path
    nodes: list[NodeProcess]
    manifest: dict[str, Any]

    @staticmethod
    def create(root: Path, nodes: int, origins: int, *, offline_certs: bool = False) -> LocalCluster:
        manifest: Any = make_testnet(root, nodes, list(DEFAULT_ORIGINS[:origins]), offline_certs=offline_certs)
        procs = [
            NodeProcess(entry["origin"], n["id"], Path(n["home"]), n["api"], n["listen"])
            for entry in manifest["origins"] for n in entry["nodes"]
        ]
        return LocalCluster(root, procs, manifest)

    @property
    def origins(self) -> list[str]:
        return list(dict.fromkeys(n.origin for n in self.nodes))

    def of(self, origin: str) -> list[NodeProcess]:
        return [n for n in self.nodes if n.origin == origin]

    def start_all(self) -> None:
        for n in self.nodes:
            n.start()

    def stop_all(self) -> dict[str, int | None]:
        codes = {}
        for n in self.nodes:  # SIGTERM all first so they shut down in parallel
            n.terminate()
        deadline = time.monotonic() + 15
        for n in self.nodes:
            codes[n.name] = n.stop(timeout=max(0.5, deadline - time.monotonic()), terminated=True)
        return codes

    async def wait_ready(self, client: httpx.AsyncClient, within: float = 120.0,
                         nodes: list[NodeProcess] | None = None) -> dict[str, float]:
        """Seconds until each node answers /ready with 200; raises RuntimeError naming the late ones."""
        started = time.monotonic()
        times: dict[str, float] = {}

        async def one(n: NodeProcess) -> None:
            async def ready() -> bool:
                return (await client.get(n.api + "/ready", timeout=3)).status_code == 200

            if await poll_until(ready, within=within):
                times[n.name] = time.monotonic() - started

        async with trio.open_nursery() as nursery:
            for n in nodes or self.nodes:
                nursery.start_soon(one, n)
        late = [n for n in nodes or self.nodes if n.name not in times]
        if late:
            tails = "\n".join(f"--- {n.name} ---\n{n.log_tail()}" for n in late)
            raise RuntimeError(f"not ready within {within:g}s: {', '.join(n.name for n in late)}\n{tails}")
        return times
