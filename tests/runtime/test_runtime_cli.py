"""Bad input and idempotency of the runtime's commands: one clear line, non-zero exit, nothing changed.

The commands run in-process through `node.cli.main` (the same code path as the `node` script, minus
interpreter start-up, which keeps this file fast); the daemon tests run real `node` subprocesses."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from node.cli import main


@pytest.fixture
def run_node(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        for name in ("NODE_HOME", "NODE_REDIS_URL", "NODE_NAMESPACE", "NODE_LISTEN", "NODE_API"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setattr(sys, "argv", ["node", *args])
        with pytest.raises(SystemExit) as exit_info:
            main()
        out = capsys.readouterr()
        return subprocess.CompletedProcess(list(args), int(exit_info.value.code or 0), out.out, out.err)

    return run


def one_line_error(done, code: int | None = None) -> str:
    assert done.returncode != 0, done.stdout
    if code is not None:
        assert done.returncode == code
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "Traceback" not in done.stderr
    return lines[0]


def test_init_is_idempotent_and_keys(tmp_path: Path, run_node) -> None:
    home = tmp_path / "h"
    first = run_node("init", "--origin", "alpha.example", "--home", str(home))
    assert first.returncode == 0, first.stderr
    node_id = first.stdout.strip().splitlines()[-1].split()[-1]
    key = (home / "keys" / "node.key").read_bytes()
    assert (home / "keys" / "node.key").stat().st_mode & 0o777 == 0o600
    assert 'origin = "alpha.example"' in (home / "config" / "node.toml").read_text()
    assert (home / "data").is_dir() and (home / "run").is_dir()
    second = run_node("init", "--origin", "alpha.example", "--home", str(home))
    assert second.returncode == 0 and "exists" in second.stdout and node_id in second.stdout
    assert (home / "keys" / "node.key").read_bytes() == key
    shown = run_node("keys", "show", "--home", str(home))
    assert node_id in shown.stdout and "public key:" in shown.stdout
    assert "refusing to overwrite" in one_line_error(run_node("keys", "gen", "--home", str(home)))
    assert (home / "keys" / "node.key").read_bytes() == key
    config = run_node("config", "show", "--home", str(home), "--json")
    values = json.loads(config.stdout)
    assert values["origin"] == {"value": "alpha.example", "source": f"file {home}/config/node.toml"}
    assert values["listen"]["source"] == "default" and values["home"]["source"] == "flag --home"


def test_bad_inputs(tmp_path: Path, run_node) -> None:
    home = tmp_path / "h"
    assert run_node("init", "--origin", "alpha.example", "--home", str(home)).returncode == 0
    good = tmp_path / "good.toml"
    good.write_text("version = 1\n[healer]\ninterval_sec = 0.5\n")
    assert run_node("truth", "load", str(good), "--home", str(home)).returncode == 0
    stored = (home / "config" / "truth.json").read_text()

    bad = tmp_path / "bad.json"
    for text in (
        "{not json",
        '{"version": 0}',
        '{"version": 2, "startup": {"components": [{"name": "x", "kind": "?"}]}}',
    ):
        bad.write_text(text)
        line = one_line_error(run_node("truth", "load", str(bad), "--home", str(home)), code=2)
        assert line.startswith("error:")
        assert (home / "config" / "truth.json").read_text() == stored
    shown = run_node("truth", "show", "--home", str(home))
    assert shown.returncode == 0 and json.loads(shown.stdout.split("\n", 1)[1])["version"] == 1

    assert "No such option" in one_line_error(run_node("start", "--home", str(home), "--bogus"), code=2)
    assert "--listen" in one_line_error(run_node("start", "--home", str(home), "--listen", "nowhere"))

    blocker = tmp_path / "a-file"
    blocker.write_text("")
    line = one_line_error(run_node("init", "--origin", "alpha.example", "--home", str(blocker / "home")))
    assert "not usable" in line or "not writable" in line
    assert "node init" in one_line_error(run_node("start", "--origin", "a.example", "--home", str(tmp_path / "none")))
    assert not (tmp_path / "none").exists()
    one_line_error(run_node("init", "--origin", "Not An Origin", "--home", str(tmp_path / "x")))
    assert not (tmp_path / "x").exists()
