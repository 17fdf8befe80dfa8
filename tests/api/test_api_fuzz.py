"""Schema-driven fuzzing: every GET route of /openapi.json with generated path and query values.

The API runs in a thread of its own (its own trio loop) so hypothesis can drive a plain
synchronous test; whatever it sends, the answer must never be a 5xx, and errors must be JSON.
"""

from __future__ import annotations

import queue
import threading
from urllib.parse import quote

import httpx
import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from node.api import ApiService

TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40)


def value_for(schema: dict) -> st.SearchStrategy[str]:
    """Mostly values the schema allows (so the routes' real code runs), plus garbage."""
    if schema.get("type") == "integer":
        lo, hi = schema.get("minimum", 0), schema.get("maximum", 2**63 - 1)
        good = st.one_of(st.integers(lo, min(hi, lo + 60)), st.integers(lo, hi))
        bad = st.one_of(st.integers(-(2**70), -1), st.integers(hi + 1, 2**80), st.floats(allow_nan=True))
        return st.one_of(good.map(str), good.map(str), bad.map(str), TEXT)
    if schema.get("type") == "string" and "pattern" in schema:
        return st.one_of(st.from_regex(schema["pattern"], fullmatch=True), TEXT)
    return TEXT


@pytest.fixture(scope="module")
def served(tmp_path_factory, node_builder):
    node = node_builder(tmp_path_factory.mktemp("fuzz"))
    started: queue.Queue = queue.Queue()

    async def main() -> None:
        with trio.CancelScope() as scope:
            async with trio.open_nursery() as nursery:
                url = await nursery.start(ApiService(node.view, bind="127.0.0.1:0").run)
                started.put((url, scope, trio.lowlevel.current_trio_token()))

    thread = threading.Thread(target=trio.run, args=(main,), daemon=True)
    thread.start()
    url, scope, token = started.get(timeout=30)
    with httpx.Client(base_url=url, timeout=10) as client:
        spec = client.get("/openapi.json").json()
        yield client, spec
    trio.from_thread.run_sync(scope.cancel, trio_token=token)
    thread.join(timeout=10)
    node.store.close()


def get_routes(spec: dict) -> list[tuple[str, list[dict]]]:
    out = []
    for path, item in spec["paths"].items():
        op = item.get("get")
        if op is None or op.get("x-websocket") or path == "/":
            continue
        out.append((path, op.get("parameters", [])))
    return out


@st.composite
def requests(draw, routes):
    path, params = draw(st.sampled_from(routes))
    query = {}
    for p in params:
        value = draw(value_for(p["schema"]))
        if p["in"] == "path":
            path = path.replace("{" + p["name"] + "}", quote(value, safe="") or "0")
        elif draw(st.booleans()):
            query[p["name"]] = value
    return path, query


def test_every_get_route_survives_generated_input(served):
    client, spec = served
    routes = get_routes(spec)
    assert len(routes) >= 17  # every GET route but the page and the WebSocket
    seen: set[int] = set()

    @settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
    @given(requests(routes))
    def check(request):
        path, query = request
        r = client.get(path, params=query)
        assert r.status_code < 500, (path, query, r.status_code, r.text[:200])
        seen.add(r.status_code)
        if r.status_code >= 400:
            assert "error" in r.json()

    check()
    assert {200, 400, 404} <= seen  # the generator reaches real answers, not only refusals


def test_post_actions_survives_random_bytes(served):
    client, _ = served

    @settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.binary(max_size=2048), st.sampled_from([{}, {"wait": "true", "timeout": "0.05"}]))
    def check(body, params):
        r = client.post("/actions", content=body, params=params)
        assert r.status_code in (400, 413), (body, r.status_code, r.text[:200])
        assert r.json()["error"]

    check()
