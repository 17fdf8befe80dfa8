"""Nodes on one external Redis (namespaces), an outage of that Redis, and waiting for the truth."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from node.runtime.testing import clean_env, node_cmd, run_node, spawn_test_redis, wait_for

pytestmark = pytest.mark.slow


@pytest.fixture
def nodes() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def start(nodes: list, tmp_path: Path, name: str, url: str, **env: str) -> tuple[subprocess.Popen[bytes], str]:
    home = tmp_path / name
    init = run_node("init", "--origin", "alpha.example", "--home", str(home))
    assert init.returncode == 0, init.stderr
    node_id = init.stdout.strip().splitlines()[-1].split()[-1]
    args = ("start", "--home", str(home), "--redis-url", url, "--namespace", name, "--log-format", "json")
    proc = subprocess.Popen(
        node_cmd(*args, "--heartbeat-interval", "0.2"),
        stderr=(tmp_path / f"{name}.log").open("w"),
        env=clean_env(**env),
    )
    nodes.append(proc)
    return proc, node_id


def status(client: redis.Redis, ns: str) -> dict:
    text = client.get(f"{ns}:truth:system:startup_status")
    return json.loads(text) if text else {}


def test_two_namespaces_survive_a_redis_outage(tmp_path: Path, nodes: list) -> None:
    sock = tmp_path / "shared.sock"
    server = spawn_test_redis(sock)
    url = f"unix://{sock}"
    client = redis.Redis.from_url(url, decode_responses=True, socket_timeout=2)
    try:
        wait_for(client.ping, 10, "shared redis")
        a, a_id = start(nodes, tmp_path, "a", url)
        b, b_id = start(nodes, tmp_path, "b", url)
        for ns, node_id in (("a", a_id), ("b", b_id)):
            wait_for(lambda ns=ns: status(client, ns).get("status") == "ready", 15, f"node {ns} ready")
            assert status(client, ns)["node"] == node_id
            assert client.smembers(f"{ns}:truth:mesh:nodes") == {node_id}
        assert client.get("truth:system:startup_status") is None  # nothing outside the namespaces
        # tools find a running node's Redis and namespace through its home
        shown = run_node("truth", "show", "--home", str(tmp_path / "b"))
        assert shown.returncode == 0 and f"from redis {url}" in shown.stdout, shown.stderr

        server.kill()
        server.wait()
        wait_for(lambda: "redis unavailable" in (tmp_path / "a.log").read_text(), 10, "the outage logged")
        assert a.poll() is None and b.poll() is None
        server = spawn_test_redis(sock)
        wait_for(client.ping, 10, "redis back")
        for ns in ("a", "b"):
            wait_for(lambda ns=ns: status(client, ns).get("status") == "ready", 10, f"node {ns} republished")
            wait_for(lambda ns=ns: client.pttl(f"{ns}:svc:hb:node") > 0, 5, f"{ns} heartbeats resumed")
        assert (tmp_path / "a.log").read_text().count("redis unavailable") == 1  # logged once per outage
        assert json.loads(client.get("a:truth:doc"))["version"] == 0  # the default truth, republished
    finally:
        client.close()
        server.kill()
        server.wait()


def test_blocking_truth_waits_until_loaded(redis_server: str, tmp_path: Path, nodes: list) -> None:
    client = redis.Redis.from_url(redis_server, decode_responses=True)
    proc, _ = start(nodes, tmp_path, "w", redis_server, NODE_WAIT_FOR_TRUTH="1")
    # the truth is a blocking component: nothing after it starts until a truth (version >= 1) arrives
    wait_for(lambda: client.get("w:truth:doc"), 10, "the node to reach Redis")
    assert status(client, "w") == {} and proc.poll() is None
    truth = tmp_path / "t.toml"
    truth.write_text("version = 1\n[startup]\ngrace_timeout_sec = 30\n")
    done = run_node("truth", "load", str(truth), "--redis-url", redis_server, "--namespace", "w")
    assert done.returncode == 0, done.stderr
    wait_for(lambda: status(client, "w").get("status") == "ready", 10, "ready after the truth arrived")
    assert client.get("w:truth:version") == "1"
    client.close()
