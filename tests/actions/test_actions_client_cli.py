"""The action client (envelope building, nonces) and the `node action` / `node actions` commands."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

import httpx
import pytest
from click.testing import CliRunner

from node.actions import BUILTIN, Envelope
from node.actions.client import ActionClient
from node.actions.errors import ClientError
from node.cli import cli
from node.crypto import PrivateKey, read_private_key


class Clock:
    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def test_client_builds_signed_envelopes_with_increasing_nonces(key_type, rsa_keys) -> None:
    key = rsa_keys[0] if key_type == "rsa-pss" else PrivateKey.generate()
    clock = Clock(1_000)
    with ActionClient(key, "http://unused", clock=clock, origin="alpha.example", ttl_ns=50) as client:
        a = client.build("/points/join", {"point": "p"})
        b = client.build("/points/join", {"point": "p"})  # the clock did not move
        clock.now = 5_000
        c = client.build("/signals/post", {"point": "p", "body": 1}, target="beta.example")
    assert (a.nonce, b.nonce, c.nonce) == (1_000, 1_001, 5_000)
    assert (a.expiry_ns, c.expiry_ns) == (1_050, 5_050)
    for env in (a, b, c):
        assert env.verify_signature() and env.actor_key == key.public and env.key_type == key_type
        assert Envelope.from_wire(env.to_wire()) == env
    assert c.destination == "beta.example"
    # A restarted client (no memory) still goes above: its nonces come from the clock.
    with ActionClient(key, "http://unused", clock=Clock(5_001), origin="alpha.example") as again:
        assert again.build("/points/join", {"point": "p"}).nonce > c.nonce


def test_client_posts_wire_bytes_and_reports_refusals() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path == "/status":
            return httpx.Response(200, json={"origin": "alpha.example"})
        if request.headers.get("x-refuse"):
            return httpx.Response(400, json={"error": "bad_signature"})
        return httpx.Response(200, json={"ok": True})

    http = httpx.Client(transport=httpx.MockTransport(handler))
    client = ActionClient(PrivateKey.generate(), "http://node.test/", clock=Clock(7), http=http)
    env = client.build("/users/create", {"name": "a"})
    assert env.origin == "alpha.example"  # asked from GET /status
    assert client.send(env, wait=True) == {"ok": True}
    post = seen[-1]
    assert (post.method, post.url.path, post.url.params.get("wait")) == ("POST", "/actions", "true")
    assert post.content == env.to_wire()
    http.headers["x-refuse"] = "1"
    with pytest.raises(ClientError, match="bad_signature"):
        client.send(env)


def test_client_unreachable_node_is_a_clean_error() -> None:
    client = ActionClient(PrivateKey.generate(), closed_port_url(), clock=Clock(1), timeout_s=5)
    with pytest.raises(ClientError, match="cannot reach"):
        client.origin  # noqa: B018


def test_keygen_and_list(tmp_path) -> None:
    runner = CliRunner()
    out = tmp_path / "alice.pem"
    result = runner.invoke(cli, ["action", "keygen", "--out", str(out), "--type", "rsa-pss"])
    assert result.exit_code == 0, result.output
    key = read_private_key(out)
    assert key.key_type == "rsa-pss" and key.fingerprint in result.output
    assert out.stat().st_mode & 0o777 == 0o600
    listed = runner.invoke(cli, ["actions", "list", "--json"])
    rows = json.loads(listed.output)
    assert [r["path"] for r in rows] == [s.path for s in BUILTIN.specs()]
    join = next(r for r in rows if r["path"] == "/signals/post")
    assert join["guards"][-1] == "member" and "signal" in join["description"].lower()
    text = runner.invoke(cli, ["actions", "list"]).output
    assert "/users/create" in text and "identity(self-register)" in text


def run_node(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "node", *args], capture_output=True, text=True, timeout=60)


def test_cli_errors_are_one_line(tmp_path) -> None:
    key = tmp_path / "k.pem"
    assert run_node("action", "keygen", "--out", str(key)).returncode == 0
    again = run_node("action", "keygen", "--out", str(key))
    assert again.returncode != 0 and "already exists" in again.stderr and "Traceback" not in again.stderr
    url = closed_port_url()
    floats = run_node("action", "send", "--key", str(key), "--node", url, "--origin", "a.example", "/x", '{"v": 1.5}')
    assert floats.returncode != 0 and "floats" in floats.stderr and "Traceback" not in floats.stderr
    down = run_node("action", "send", "--key", str(key), "--node", url, "--origin", "a.example", "/users/create",
                    '{"name": "a"}')
    assert down.returncode != 0 and "cannot reach" in down.stderr and "Traceback" not in down.stderr
    assert len(down.stderr.strip().splitlines()) == 1
