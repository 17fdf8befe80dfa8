"""`node healer` and `node sentinel` as real processes against a real redis-server."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from node.runtime.testing import clean_env, node_cmd, read_alerts, run_node, wait_for

pytestmark = pytest.mark.slow

TRUTH = {
    "version": 1,
    "heartbeat": {"channels": [{"svc": "svc1", "interval_sec": 0.1, "timeout_sec": 0.6}]},
    "healer": {"interval_sec": 0.1, "timeout_sec": 0.6},
}


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def load_truth(tmp_path: Path, url: str, *extra: str) -> None:
    (tmp_path / "truth.json").write_text(json.dumps(TRUTH))
    done = run_node("truth", "load", str(tmp_path / "truth.json"), "--redis-url", url, *extra)
    assert done.returncode == 0, done.stderr


def spawn(
    procs: list[subprocess.Popen[bytes]], tmp_path: Path, which: str, url: str, *extra: str
) -> subprocess.Popen[bytes]:
    log = (tmp_path / f"{which}.log").open("w")
    proc = subprocess.Popen(
        node_cmd(which, "--redis-url", url, "--log-format", "json", *extra), stderr=log, env=clean_env()
    )
    procs.append(proc)
    return proc


def of_type(client: redis.Redis, kind: str, namespace: str = "") -> list[dict]:
    return [a for a in read_alerts(client, namespace) if a["type"] == kind]


def test_healer_miss_after_timeout_and_ok_on_return(redis_server: str, tmp_path: Path, procs: list) -> None:
    load_truth(tmp_path, redis_server)
    client = redis.Redis.from_url(redis_server, decode_responses=True)
    healer = spawn(procs, tmp_path, "healer", redis_server)
    beats = 0

    def beat_and_check(kind: str, count: int) -> bool:
        nonlocal beats
        beats += 1
        client.publish("svc1:heartbeat", json.dumps({"svc": "svc1", "i": beats, "ts": time.time()}))
        return len(of_type(client, kind)) >= count

    wait_for(lambda: beat_and_check("heartbeat_ok", 1), 15, "heartbeat_ok while beating", interval=0.1)
    assert healer.poll() is None and of_type(client, "heartbeat_miss") == []
    assert json.loads(client.get("health:svc1"))["status"] == "ok"
    assert client.pttl("healer:heartbeat") > 0  # the healer keeps its own heartbeat key fresh
    last_beat = time.monotonic()
    [miss] = wait_for(lambda: of_type(client, "heartbeat_miss"), 5, "heartbeat_miss after the beats stop")
    assert time.monotonic() - last_beat >= 0.6 and miss["svc"] == "svc1" and miss["silent_for"] >= 0.6
    assert json.loads(client.get("health:svc1"))["status"] == "miss"
    wait_for(lambda: beat_and_check("heartbeat_ok", 2), 5, "heartbeat_ok when beats return", interval=0.1)
    assert len(of_type(client, "heartbeat_miss")) == 1 and json.loads(client.get("health:svc1"))["status"] == "ok"
    client.close()


def test_sentinel_reports_killed_healer(redis_server: str, tmp_path: Path, procs: list) -> None:
    ns = ("--namespace", "n1")
    load_truth(tmp_path, redis_server, *ns)
    client = redis.Redis.from_url(redis_server, decode_responses=True)
    assert client.get("n1:truth:version") == "1" and client.get("truth:version") is None
    healer = spawn(procs, tmp_path, "healer", redis_server, *ns)
    spawn(procs, tmp_path, "sentinel", redis_server, *ns)
    wait_for(lambda: of_type(client, "healer_ok", "n1"), 15, "healer_ok from the sentinel")
    healer.kill()
    healer.wait()
    killed_at = time.monotonic()
    [miss] = wait_for(lambda: of_type(client, "healer_miss", "n1"), 5, "healer_miss from the sentinel")
    assert miss["by"] == "sentinel" and time.monotonic() - killed_at < 5
    assert json.loads(client.get("n1:health:healer"))["status"] == "miss"
    client.close()
