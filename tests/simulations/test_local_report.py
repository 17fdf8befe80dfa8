"""The local simulation's report helpers: percentiles, rate series, self-contained SVG/HTML."""

from __future__ import annotations

import json
from pathlib import Path

from simulations.local_checks import sample_indices
from simulations.local_report import dag_svg, histogram, line_chart, percentile, rate_series, write_report


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) == 50.0
    assert percentile(values, 0.99) == 99.0
    assert percentile(values, 1.0) == 100.0
    assert percentile([], 0.5) is None


def test_rate_series_differentiates_cumulative_counts() -> None:
    samples = [(0.0, 0), (1.0, 10), (2.0, 30), (3.0, 30), (4.0, 70)]
    assert rate_series(samples, bucket=2.0) == [(2.0, 15.0), (4.0, 20.0)]


def test_state_hash_sample_covers_small_chains_fully_and_the_tail_of_long_ones() -> None:
    assert sample_indices(5) == [0, 1, 2, 3, 4]
    long = sample_indices(10_000)
    assert long[0] == 0 and long[-1] == 9_999 and len(long) <= 401
    assert set(range(9_800, 10_000)) <= set(long)


def test_html_report_has_inline_svgs_and_no_external_assets(tmp_path: Path) -> None:
    graph = {"events": [
        {"hash": "a", "creator": "n1", "lamport": 0, "round": 0, "witness": True, "famous": True,
         "round_received": 1, "transactions": 0, "self_parent": None, "other_parent": None},
        {"hash": "b", "creator": "n2", "lamport": 1, "round": 0, "witness": True, "famous": None,
         "round_received": None, "transactions": 2, "self_parent": None, "other_parent": "a"},
    ]}
    assert dag_svg(graph).count("<circle") == 2 and dag_svg(graph).count("<line") == 1
    assert histogram([0.02, 0.5, 0.6, 3.0], "s").count("<title>") == 20
    assert "<polyline" in line_chart({"x": [(0.0, 1.0), (1.0, 2.0)]}, "t", "y")
    report = {
        "ok": False, "config": {"nodes": 4}, "graph_node": "alpha/node0",
        "figures": {"actions_per_s_final": 1.0, "latency_s": {"count": 4, "p50": 0.5}},
        "invariants": {"agreement": True, "no_loss": False, "origins": {"alpha.example": {"agreement": True}}},
        "faults": [{"kind": "kill", "started_s": 3.0, "skipped": None}], "nodes": [{"node": "alpha/node0"}],
        "series": {"final_per_s": {"alpha.example": [[1.0, 2.0], [2.0, 3.0]]}, "acked_per_s": [[1.0, 4.0]],
                   "latencies": [0.02, 0.5, 0.6, 3.0]},
    }
    json_path, html_path = write_report(tmp_path / "r", report, graph)
    assert json.loads(json_path.read_text())["ok"] is False
    page = html_path.read_text()
    assert "FAIL" in page and page.count("<svg") == 3
    assert "src=" not in page and "href=" not in page
