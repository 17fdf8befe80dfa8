"""`node leave` and `node join` on bad input: one clear line, non-zero exit, nothing submitted."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from node.cli import main
from node.runtime.home import Home, init_home


def run(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    for name in ("NODE_HOME", "NODE_API"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(sys, "argv", ["node", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    out = capsys.readouterr()
    return int(exit_info.value.code or 0), out.err.strip()


def test_leave_without_a_running_node(tmp_path: Path, monkeypatch, capsys) -> None:
    init_home(Home(tmp_path / "h"), "alpha.example")
    code, err = run(monkeypatch, capsys, "leave", "--home", str(tmp_path / "h"))
    assert code != 0 and len(err.splitlines()) == 1 and "no node is running" in err


def test_join_without_a_certificate(tmp_path: Path, monkeypatch, capsys) -> None:
    init_home(Home(tmp_path / "h"), "alpha.example")
    code, err = run(monkeypatch, capsys, "join", "--home", str(tmp_path / "h"), "--via", "http://127.0.0.1:9")
    assert code != 0 and len(err.splitlines()) == 1 and "no CA-issued certificate" in err


def test_join_needs_via(tmp_path: Path, monkeypatch, capsys) -> None:
    code, err = run(monkeypatch, capsys, "join", "--home", str(tmp_path / "h"))
    assert code != 0 and "--via" in err


def test_join_with_an_unreachable_member(tmp_path: Path, monkeypatch, capsys) -> None:
    home = Home(tmp_path / "h")
    init_home(home, "alpha.example")
    from node.engine.paths import issued_certificate_path

    issued_certificate_path(home.root).write_text("-----BEGIN CERTIFICATE-----\n")
    code, err = run(monkeypatch, capsys, "join", "--home", str(home.root), "--via", "http://127.0.0.1:9")
    assert code != 0 and len(err.splitlines()) == 1 and "cannot reach" in err


def test_join_keeps_an_existing_genesis_and_refuses_without_one(tmp_path: Path) -> None:
    from node.commands.membership_cmd import LeaveFailed, fetch_genesis

    existing = tmp_path / "genesis.json"
    existing.write_text("{}")
    fetch_genesis("http://127.0.0.1:9", existing, "alpha.example")  # nothing fetched: the home has one
    assert existing.read_text() == "{}"
    with pytest.raises(LeaveFailed, match="copy genesis.json"):
        fetch_genesis("http://127.0.0.1:9", tmp_path / "missing.json", "alpha.example")
    assert not (tmp_path / "missing.json").exists()
