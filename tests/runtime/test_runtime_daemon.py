"""Acceptance of the daemon with real `node` subprocesses and the real embedded redis-server."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from node.runtime.testing import clean_env, node_cmd, process_alive, run_node, wait_for
from node.runtime.testing import read_alerts as alerts

pytestmark = pytest.mark.slow

FAST_TRUTH = {
    "version": 1,
    "startup": {"grace_timeout_sec": 5.0},
    "heartbeat": {
        "channels": [
            {"svc": "redis", "interval_sec": 0.2, "timeout_sec": 1.0},
            {"svc": "truth", "interval_sec": 0.2, "timeout_sec": 1.0},
            {"svc": "node", "interval_sec": 0.2, "timeout_sec": 1.0},
        ]
    },
    "healer": {"interval_sec": 0.2, "timeout_sec": 1.0},
    "settings": {"heartbeat_interval": 0.2},
}


class RunningNode:
    def __init__(self, home: Path, log: Path) -> None:
        self.home, self.log = home, log
        self.proc = subprocess.Popen(
            node_cmd("start", "--home", str(home), "--log-format", "json"),
            stdout=subprocess.DEVNULL,
            stderr=log.open("w"),
            env=clean_env(),
        )
        url = wait_for(self._redis_url, 15, "the node's embedded redis URL in run/redis.url")
        self.client = redis.Redis.from_url(url, decode_responses=True, socket_timeout=2)
        self.redis_pid = int(wait_for(lambda: self.client.info("server")["process_id"], 10, "embedded redis"))

    def _redis_url(self) -> str | None:
        assert self.proc.poll() is None, f"node exited early: {self.log.read_text()}"
        path = self.home / "run" / "redis.url"
        return path.read_text().splitlines()[0] if path.exists() else None

    def status(self) -> dict:
        text = self.client.get("truth:system:startup_status")
        return json.loads(text) if text else {}

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.client.close()


@pytest.fixture
def home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    init = run_node("init", "--origin", "alpha.example", "--home", str(home))
    assert init.returncode == 0, init.stderr
    truth = tmp_path / "fast.json"
    truth.write_text(json.dumps(FAST_TRUTH))
    loaded = run_node("truth", "load", str(truth), "--home", str(home))
    assert loaded.returncode == 0, loaded.stderr
    return home


@pytest.fixture
def node(home: Path, tmp_path: Path) -> Iterator[RunningNode]:
    running = RunningNode(home, tmp_path / "node.log")
    try:
        yield running
    finally:
        running.stop()


def test_start_ready_heartbeats_truth_update_and_sigterm(node: RunningNode, home: Path, tmp_path: Path) -> None:
    node_id = run_node("keys", "show", "--home", str(home)).stdout.split()[2]
    status = wait_for(lambda: node.status().get("status") == "ready" and node.status(), 10, "status ready")
    assert status["node"] == node_id and status["phase"] == "self-signed"
    assert {"redis", "truth", "node", "healer", "sentinel"} <= set(status["services"])
    assert (home / "run" / "pid").read_text().strip() == str(node.proc.pid)

    # fresh heartbeat keys (TTL set, recent timestamp) and heartbeats on pub/sub
    for svc in ("redis", "truth", "node", "healer"):
        beat = json.loads(wait_for(lambda s=svc: node.client.get(f"svc:hb:{s}"), 5, f"svc:hb:{svc}"))
        assert beat["svc"] == svc and time.time() - beat["ts"] < 5 and node.client.pttl(f"svc:hb:{svc}") > 0
    assert node.client.pttl(f"truth:heartbeat:{node_id}") > 0
    assert node_id in node.client.smembers("truth:mesh:nodes")
    assert {"redis", "node"} <= node.client.smembers("svc:list")
    assert json.loads(node.client.get("svc:cfg:redis"))["kind"] == "blocking"
    pubsub = node.client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe("node:heartbeat")
    message = wait_for(lambda: pubsub.get_message(timeout=0.5), 5, "a node:heartbeat message")
    assert set(json.loads(message["data"])) == {"svc", "i", "ts"}
    pubsub.close()

    # a second daemon on the same home is refused, and changes nothing
    second = run_node("start", "--home", str(home))
    assert second.returncode != 0 and len(second.stderr.strip().splitlines()) == 1
    assert "already running" in second.stderr and node.proc.poll() is None

    # truth load reaches the running node's Redis; the node's healer follows the new channel list
    update = dict(FAST_TRUTH, version=2)
    update["heartbeat"] = {
        "channels": [*FAST_TRUTH["heartbeat"]["channels"], {"svc": "ghost", "interval_sec": 0.1, "timeout_sec": 0.5}]
    }
    (tmp_path / "v2.json").write_text(json.dumps(update))
    loaded = run_node("truth", "load", str(tmp_path / "v2.json"), "--home", str(home))
    assert loaded.returncode == 0 and "written to redis" in loaded.stdout, loaded.stderr
    assert node.client.get("truth:version") == "2"
    miss = wait_for(lambda: [a for a in alerts(node.client) if a["svc"] == "ghost"], 10, "heartbeat_miss for ghost")
    assert miss[0]["type"] == "heartbeat_miss" and json.loads(node.client.get("health:ghost"))["status"] == "miss"

    start = time.monotonic()
    node.proc.send_signal(signal.SIGTERM)
    assert node.proc.wait(timeout=5) == 0
    assert time.monotonic() - start < 5
    wait_for(lambda: not process_alive(node.redis_pid), 3, "embedded redis gone")
    assert not (home / "run" / "pid").exists() and not (home / "run" / "redis.url").exists()
    events = [json.loads(line) for line in node.log.read_text().splitlines()]  # --log-format json
    assert {"node starting", "stopping", "node stopped"} <= {e["event"] for e in events}


def test_kill9_of_node_leaves_no_redis(node: RunningNode) -> None:
    wait_for(lambda: node.status().get("status") == "ready", 10, "status ready")
    assert process_alive(node.redis_pid)
    node.proc.kill()
    node.proc.wait()
    wait_for(lambda: not process_alive(node.redis_pid), 5, "embedded redis to die with its parent")


def test_killed_embedded_redis_comes_back(node: RunningNode) -> None:
    wait_for(lambda: node.status().get("status") == "ready", 10, "status ready")
    old_pid = node.redis_pid
    subprocess.run(["kill", "-9", str(old_pid)], check=True)
    wait_for(lambda: not process_alive(old_pid), 5, "old redis gone")
    new_pid = wait_for(
        lambda: int(node.client.info("server")["process_id"]) != old_pid and node.client.info("server")["process_id"],
        10,
        "a new embedded redis",
    )
    assert process_alive(int(new_pid)) and node.proc.poll() is None
    # the node republished its state into the new, empty server, and heartbeats resumed
    wait_for(lambda: node.status().get("status") == "ready", 10, "status republished")
    assert node.client.get("truth:version") == "1"
    wait_for(lambda: node.client.pttl("svc:hb:node") > 0, 5, "fresh svc:hb:node")
    ok = wait_for(
        lambda: [a for a in alerts(node.client) if a["svc"] == "node" and a["type"] == "heartbeat_ok"],
        10,
        "heartbeat_ok for node",
    )
    assert ok[0]["by"] == "healer"
    assert "redis unavailable" in node.log.read_text()
