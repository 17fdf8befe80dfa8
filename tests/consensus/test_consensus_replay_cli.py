"""`node dag replay FILE --json`: output format and one-line errors with exit status 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from node.commands.dag import dag
from node.consensus.errors import ReplayInputError
from node.errors import InvalidInput

DATA = Path(__file__).resolve().parent / "data" / "babble"


def test_replay_json_format() -> None:
    result = CliRunner().invoke(dag, ["replay", str(DATA / "babble_consensus.json"), "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert set(out) == {"events", "consensus_order", "blocks"}
    assert out["events"]["f1"] == {"round": 1, "witness": True, "famous": True, "lamport": 5, "round_received": 2}
    assert out["events"]["f1b"]["famous"] is None and out["events"]["f1b"]["witness"] is False
    assert out["events"]["h1"]["famous"] is None and out["events"]["h1"]["witness"] is True
    assert len(out["consensus_order"]) == 16
    assert out["blocks"][0] == {"index": 0, "round_received": 1, "transactions": ["e21"]}


def test_replay_text_output() -> None:
    result = CliRunner().invoke(dag, ["replay", str(DATA / "babble_monologue.json")])
    assert result.exit_code == 0
    assert "block 5: round received 6, 1 transactions" in result.output


@pytest.mark.parametrize(
    "content, message",
    [
        ("not json", "is not JSON"),
        ("[]", "top level must be an object"),
        ('{"participants": ["a"], "events": [{"id": "x"}]}', "lacks the field"),
        ('{"participants": ["a"], "events": [{"id": "x", "creator": "a", "index": 0, "self_parent": "nope",'
         ' "other_parent": null, "timestamp_hint": 0}]}', "unknown parent"),
        ('{"participants": ["a"], "events": [{"id": "x", "creator": "b", "index": 0, "self_parent": null,'
         ' "other_parent": null, "timestamp_hint": 0}]}', "unknown creator"),
        ('{"participants": ["a"], "events": [{"id": "x", "creator": "a", "index": 3, "self_parent": null,'
         ' "other_parent": null, "timestamp_hint": 0}]}', "wrong index"),
    ],
)
def test_bad_files_raise_invalid_input(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "g.json"
    path.write_text(content)
    result = CliRunner().invoke(dag, ["replay", str(path), "--json"], standalone_mode=False)
    assert isinstance(result.exception, ReplayInputError) and isinstance(result.exception, InvalidInput)
    assert message in str(result.exception)


def test_root_cli_prints_one_line_and_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text("{")
    proc = subprocess.run(
        [sys.executable, "-m", "node", "dag", "replay", str(path), "--json"],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "not JSON" in lines[0]
