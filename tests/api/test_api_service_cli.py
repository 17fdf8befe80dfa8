"""The service's lifecycle (HOME/run/api, port 0, stop), a node before consensus, and `node status`."""

from __future__ import annotations

import json
import sys

import httpx
import pytest
import trio

from node import codec
from node.api import ApiService, NodeView
from node.api.errors import ApiUsageError
from node.commands.status import render
from node.runtime.home import Home


async def test_stop_and_cancel_remove_the_api_file(node, tmp_path):
    home = Home(tmp_path / "h")
    service = ApiService(node.view, bind="127.0.0.1:0", home=home)
    async with trio.open_nursery() as nursery:
        url = await nursery.start(service.run)
        assert home.api_file.read_text().strip() == url and int(url.rsplit(":", 1)[1]) > 0
        async with httpx.AsyncClient() as c:
            assert (await c.get(url + "/health")).status_code == 200
        service.stop()
    assert not home.api_file.exists()
    other = ApiService(node.view, bind="127.0.0.1:0", home=home)
    async with trio.open_nursery() as nursery:
        await nursery.start(other.run)
        assert home.api_file.exists()
        nursery.cancel_scope.cancel()
    assert not home.api_file.exists()


def test_bad_bind_is_refused():
    for bind in ("localhost", ":80", "127.0.0.1:99999", "127.0.0.1:x"):
        with pytest.raises(ApiUsageError):
            ApiService(None, bind=bind)  # type: ignore[arg-type]


async def test_a_node_before_consensus(node, nursery):
    node.store.put_peer_set(0, codec.pack([k.public for k in node.keys]))
    phase = {"now": "ca-issued"}
    view = NodeView(node.store, node_id="n1", origin="alpha.example", phase=lambda: phase["now"])
    url = await nursery.start(ApiService(view, bind="127.0.0.1:0").run)
    async with httpx.AsyncClient(base_url=url) as c:
        ready = await c.get("/ready")
        assert ready.status_code == 503 and ready.json() == {"ready": False, "phase": "ca-issued"}
        status = (await c.get("/status")).json()
        assert status["catching_up"] is True and status["decided_round"] is None
        assert status["latest_block"] == 2 and status["latest_round"] == node.store.last_round()
        graph = (await c.get("/graph")).json()
        assert graph["consensus"] is False and graph["events"] == [] and len(graph["blocks"]) == 3
        validators = (await c.get("/validators/5")).json()
        assert validators["count"] == 4 and validators["effective_from"] == 0
        stored = node.events[3]
        event = (await c.get(f"/events/{stored.hash.hex()}")).json()  # from storage, no graph
        assert event["in_memory"] is False and event["index"] == stored.index
        assert (await c.get("/rounds/0")).json()["stored"][0] == 0
        assert (await c.get("/stats")).json()["consensus"] is False
        r = await c.post("/actions", content=b"\x00")
        assert r.status_code == 503
        phase["now"] = "federated"
        assert (await c.get("/ready")).status_code == 200
        assert 'node_phase{node_phase="federated"} 1.0' in (await c.get("/metrics")).text


async def node_cli(*args: str) -> tuple[int, str, str]:
    proc = await trio.run_process([sys.executable, "-m", "node", *args], capture_stdout=True,
                                  capture_stderr=True, check=False)
    return proc.returncode, proc.stdout.decode(), proc.stderr.decode()


async def test_status_command_reads_the_running_node(api):
    code, out, err = await node_cli("status", "--home", str(api.home.root), "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["node_id"] == api.node.keys[0].fingerprint and doc["latest_block"] == 2
    code, out, err = await node_cli("status", "--api", api.url)
    assert code == 0, err
    assert "phase         consensus" in out and "latest block  2" in out
    assert render(doc, api.url).splitlines()[0] == f"node          {doc['node_id']}"


async def test_status_without_a_node_is_one_clear_line(tmp_path):
    code, _, err = await node_cli("status", "--home", str(tmp_path / "empty"))
    assert code != 0 and len(err.strip().splitlines()) == 1
    assert "no node is running" in err and "Traceback" not in err
    stale = Home(tmp_path / "stale")
    stale.run.mkdir(parents=True)
    stale.api_file.write_text("http://127.0.0.1:9\n")  # the discard port: nothing answers
    code, _, err = await node_cli("status", "--home", str(stale.root))
    assert code != 0 and len(err.strip().splitlines()) == 1 and "does not answer" in err


async def test_a_taken_port_is_one_clear_error(api, node):
    from node.api.errors import ApiBindError

    port = api.url.rsplit(":", 1)[1]
    async with trio.open_nursery() as nursery:
        with pytest.raises(ApiBindError, match=f"cannot serve the API on 127.0.0.1:{port}: Address already in use"):
            await nursery.start(ApiService(node.view, bind=f"127.0.0.1:{port}").run)
