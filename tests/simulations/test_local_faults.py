"""Issue 10: a crash fault on real processes: kill -9 of one node of four under load, restart,
then agreement, no lost acknowledged action and recovery within the stated limit."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.console import Console

from simulations.local import parse, simulate
from simulations.local_cluster import LocalCluster

pytestmark = pytest.mark.slow


async def test_kill9_and_restart_keeps_invariants(tmp_path: Path) -> None:
    opts = parse(["--nodes", "4", "--origins", "1", "--duration", "8", "--rate", "20", "--actors", "12",
                  "--faults", "kill", "--quiet", "--recovery-limit", "40", "--settle-within", "30"])
    report = await simulate(opts, tmp_path / "net", Console(quiet=True))
    inv = report["invariants"]
    [fault] = report["faults"]
    assert fault["kind"] == "kill" and fault["skipped"] is None
    assert fault["notes"][0].startswith("SIGKILL"), fault
    assert fault["recovered_in_time"], fault
    victim = next(n for n in report["nodes"] if n["node"] == fault["node"])
    assert victim["starts"] == 2
    assert inv["agreement"], inv
    assert inv["converged"], inv
    assert inv["no_double_apply"], inv
    # POST /actions acknowledges only once the action is in one of the node's own stored events,
    # so nothing the killed node acknowledged may be missing.
    assert inv["no_loss"], inv["origins"]["alpha.example"]["missing"]


def test_stop_all_leaves_no_process(tmp_path: Path) -> None:
    cluster = LocalCluster.create(tmp_path / "net", nodes=1, origins=1)
    node = cluster.nodes[0]
    node.start()
    first = node.proc
    node.kill9()
    node.start()
    node.pause()
    codes = cluster.stop_all()  # resumes the paused node, SIGTERM, and kills every group it started
    assert first is not None and first.returncode == -9
    assert node.proc is not None and node.proc.poll() is not None
    assert list(codes) == [node.name]
    assert not node.groups
