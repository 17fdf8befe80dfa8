"""Issue 10: the local multi-process simulation, run short: 4 real node processes, 1 origin,
a low-rate signed-action load, then the invariants (agreement, convergence, no lost
acknowledged action, no double application) and the written report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rich.console import Console

from simulations.local import parse, simulate
from simulations.local_report import write_report

pytestmark = pytest.mark.slow


async def test_short_run_keeps_every_invariant(tmp_path: Path) -> None:
    opts = parse(["--nodes", "4", "--origins", "1", "--duration", "12", "--rate", "20", "--actors", "12",
                  "--wait-share", "0.2", "--quiet", "--settle-within", "60"])
    report = await simulate(opts, tmp_path / "net", Console(quiet=True))
    graph = report.pop("graph")
    inv = report["invariants"]
    assert inv["agreement"], inv
    assert inv["converged"], inv
    assert inv["no_loss"], inv
    assert inv["no_double_apply"], inv
    figures = report["figures"]
    assert figures["acknowledged"] > 50, figures
    assert figures["blocks"]["alpha.example"] >= 1
    assert figures["latency_s"]["count"] > 0 and figures["latency_s"]["p50"] > 0
    committed = inv["origins"]["alpha.example"]["committed"]
    assert committed >= figures["acknowledged"]  # every acknowledged action, maybe a few more in flight
    # Every node process was stopped: nothing is left running.
    assert all(n["starts"] == 1 for n in report["nodes"])

    json_path, html_path = write_report(tmp_path / "report", report, graph)
    assert json.loads(json_path.read_text())["ok"] is True
    page = html_path.read_text()
    assert page.count("<svg") == 3 and "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
