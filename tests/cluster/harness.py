"""Real multi-process clusters for integration tests: `node testnet` homes, one `node start`
process per node, each with its embedded Redis, talking QUIC on 127.0.0.1.

Waiting is always polling with a deadline (never a sleep that hopes).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import trio

from node.commands.testnet import make_testnet

T = TypeVar("T")


async def eventually(check: Callable[[], Awaitable[T | None]], *, within: float, what: str, every: float = 0.2) -> T:
    """Poll `check` until it returns something other than None/False, or fail after `within` seconds."""
    last_error: BaseException | None = None
    with trio.move_on_after(within):
        while True:
            try:
                result = await check()
                if result is not None and result is not False:
                    return result
            except (httpx.HTTPError, OSError, ValueError, KeyError) as exc:
                last_error = exc
            await trio.sleep(every)
    raise AssertionError(f"timed out after {within}s waiting for {what} (last error: {last_error!r})")


@dataclass
class NodeProc:
    origin: str
    node_id: str
    home: Path
    api_address: str
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    @property
    def api(self) -> str:
        return f"http://{self.api_address}"

    extra_env: dict[str, str] = field(default_factory=dict)

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("NODE_")}
        env.update(self.extra_env)
        self.log_path = self.home / "node.log"
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "node", "start", "--origin", self.origin, "--home", str(self.home),
             "--log-format", "json"],
            stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
        )
        log.close()

    def signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, sig)

    def kill(self) -> None:
        self.signal(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(timeout=10)

    def stop(self, timeout: float = 10) -> int | None:
        if self.proc is None:
            return None
        self.signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
            return None

    def log_tail(self, lines: int = 30) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


@dataclass
class Cluster:
    root: Path
    nodes: list[NodeProc] = field(default_factory=list)

    @staticmethod
    def create(root: Path, nodes: int = 4, origins: int = 1, **testnet_options: Any) -> Cluster:
        from node.commands.testnet import DEFAULT_ORIGINS

        manifest: Any = make_testnet(root, nodes, list(DEFAULT_ORIGINS[:origins]), **testnet_options)
        cluster = Cluster(root)
        for entry in manifest["origins"]:
            for n in entry["nodes"]:
                cluster.nodes.append(NodeProc(entry["origin"], n["id"], Path(n["home"]), n["api"]))
        return cluster

    def start(self) -> None:
        for n in self.nodes:
            n.start()

    def log_events(self, node: NodeProc, event: str) -> list[dict[str, Any]]:
        """The node's JSON log lines whose event is `event` (other lines are skipped)."""
        if node.log_path is None or not node.log_path.exists():
            return []
        out = []
        for line in node.log_path.read_text(errors="replace").splitlines():
            if not line.startswith("{"):
                continue
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if record.get("event") == event:
                out.append(record)
        return out

    def stop(self) -> None:
        for n in self.nodes:
            n.stop()

    def logs(self) -> str:
        return "\n".join(f"--- {n.node_id} ---\n{n.log_tail()}" for n in self.nodes)

    async def get(self, node: NodeProc, path: str) -> Any:
        async with httpx.AsyncClient(timeout=10.0) as client:
            response = await client.get(node.api + path)
            if response.status_code == 404:
                return None
            response.raise_for_status()
            return response.json()

    async def wait_ready(self, within: float = 60.0) -> None:
        for n in self.nodes:
            async def ready(n: NodeProc = n) -> bool:
                async with httpx.AsyncClient(timeout=2.0) as client:
                    return (await client.get(n.api + "/ready")).status_code == 200
            try:
                await eventually(ready, within=within, what=f"node {n.node_id} ready")
            except AssertionError:
                raise AssertionError(f"node {n.node_id} not ready:\n{self.logs()}") from None


def manifest(root: Path) -> Any:
    return json.loads((root / "testnet.json").read_text())
