"""The run's report: `report.json` (figures and invariants) and `report.html` (inline SVG plots).

The HTML has no external assets: three SVGs drawn here (throughput over time, the latency
distribution, a snapshot of the hashgraph from one node's `/graph`) and tables of the figures.
"""

from __future__ import annotations

import html
import json
import math
from pathlib import Path
from typing import Any

DETAIL_KEYS = ("disagreements", "missing", "double_applied", "forkers_seen_by")  # shown apart, not in the table
COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"]


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))
    return ordered[k]


def rate_series(samples: list[tuple[float, int]], bucket: float = 2.0) -> list[tuple[float, float]]:
    """(t, per-second rate) from cumulative (t, count) samples, in buckets of `bucket` seconds."""
    if not samples:
        return []
    out = []
    last_t, last_c = samples[0]
    for t, c in samples[1:]:
        if t - last_t >= bucket:
            out.append((round(t, 2), round((c - last_c) / (t - last_t), 2)))
            last_t, last_c = t, c
    return out


def _axes(w: int, h: int, pad: int, xmax: float, ymax: float, xlabel: str, ylabel: str) -> list[str]:
    parts = [f'<rect x="0" y="0" width="{w}" height="{h}" fill="white"/>',
             f'<line x1="{pad}" y1="{h - pad}" x2="{w - 10}" y2="{h - pad}" stroke="#333"/>',
             f'<line x1="{pad}" y1="10" x2="{pad}" y2="{h - pad}" stroke="#333"/>']
    for k in range(5):
        yv = ymax * k / 4
        y = h - pad - (h - pad - 10) * k / 4
        parts.append(f'<text x="{pad - 4}" y="{y + 4:.1f}" font-size="10" text-anchor="end">{yv:.3g}</text>')
        xv = xmax * k / 4
        x = pad + (w - pad - 10) * k / 4
        parts.append(f'<text x="{x:.1f}" y="{h - pad + 14}" font-size="10" text-anchor="middle">{xv:.3g}</text>')
    parts.append(f'<text x="{w / 2}" y="{h - 4}" font-size="11" text-anchor="middle">{html.escape(xlabel)}</text>')
    parts.append(f'<text x="12" y="{h / 2}" font-size="11" transform="rotate(-90 12 {h / 2})" '
                 f'text-anchor="middle">{html.escape(ylabel)}</text>')
    return parts


def line_chart(series: dict[str, list[tuple[float, float]]], xlabel: str, ylabel: str,
               marks: list[tuple[float, str]] | None = None, w: int = 720, h: int = 260) -> str:
    pad = 48
    points = [p for s in series.values() for p in s]
    xmax = max((p[0] for p in points), default=1.0) or 1.0
    ymax = max((p[1] for p in points), default=1.0) or 1.0
    ymax *= 1.1
    parts = _axes(w, h, pad, xmax, ymax, xlabel, ylabel)

    def xy(x: float, y: float) -> str:
        return f"{pad + (w - pad - 10) * x / xmax:.1f},{h - pad - (h - pad - 10) * y / ymax:.1f}"

    for t, label in marks or []:
        x = pad + (w - pad - 10) * t / xmax
        parts.append(f'<line x1="{x:.1f}" y1="10" x2="{x:.1f}" y2="{h - pad}" stroke="#999" stroke-dasharray="3,3"/>')
        parts.append(f'<text x="{x + 2:.1f}" y="20" font-size="9" fill="#555">{html.escape(label)}</text>')
    for i, (name, pts) in enumerate(series.items()):
        color = COLORS[i % len(COLORS)]
        if pts:
            parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="1.5" '
                         f'points="{" ".join(xy(x, y) for x, y in pts)}"/>')
        parts.append(f'<text x="{w - 12}" y="{24 + 14 * i}" font-size="11" text-anchor="end" '
                     f'fill="{color}">{html.escape(name)}</text>')
    return f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}">{"".join(parts)}</svg>'


def histogram(values: list[float], xlabel: str, w: int = 720, h: int = 240) -> str:
    """Latency histogram on log-spaced bins (10 ms .. 100 s)."""
    pad = 48
    edges = [0.01 * 10 ** (k / 5) for k in range(21)]
    counts = [0] * (len(edges) - 1)
    for v in values:
        for k in range(len(counts)):
            if v < edges[k + 1] or k == len(counts) - 1:
                counts[k] += 1
                break
    ymax = max(counts, default=1) or 1
    parts = [f'<rect x="0" y="0" width="{w}" height="{h}" fill="white"/>',
             f'<line x1="{pad}" y1="{h - pad}" x2="{w - 10}" y2="{h - pad}" stroke="#333"/>']
    bw = (w - pad - 10) / len(counts)
    for k, c in enumerate(counts):
        bh = (h - pad - 20) * c / ymax
        x = pad + k * bw
        parts.append(f'<rect x="{x:.1f}" y="{h - pad - bh:.1f}" width="{bw - 2:.1f}" height="{bh:.1f}" fill="#1f77b4">'
                     f'<title>{edges[k]:.3g}-{edges[k + 1]:.3g} s: {c}</title></rect>')
        if c:
            parts.append(f'<text x="{x + bw / 2:.1f}" y="{h - pad - bh - 3:.1f}" font-size="9" '
                         f'text-anchor="middle">{c}</text>')
        if k % 5 == 0:
            parts.append(f'<text x="{x:.1f}" y="{h - pad + 14}" font-size="10" text-anchor="middle">'
                         f'{edges[k]:.3g}</text>')
    parts.append(f'<text x="{w / 2}" y="{h - 6}" font-size="11" text-anchor="middle">{html.escape(xlabel)}</text>')
    return f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}">{"".join(parts)}</svg>'


def dag_svg(graph: dict[str, Any] | None, max_events: int = 160, w: int = 720) -> str:
    """Events as dots (column = creator, row = lamport time), edges to both parents."""
    if not graph or not graph.get("events"):
        return "<p>(no graph snapshot)</p>"
    events = sorted(graph["events"], key=lambda e: e["lamport"])[-max_events:]
    creators = sorted({e["creator"] for e in events})
    lamports = [e["lamport"] for e in events]
    lo, hi = min(lamports), max(lamports)
    h = max(200, min(1400, 14 * (hi - lo + 2)))
    col = {c: 60 + (w - 120) * i / max(1, len(creators) - 1) for i, c in enumerate(creators)}
    pos = {e["hash"]: (col[e["creator"]], h - 20 - (h - 40) * (e["lamport"] - lo) / max(1, hi - lo)) for e in events}
    parts = [f'<rect x="0" y="0" width="{w}" height="{h}" fill="white"/>']
    for c, x in col.items():
        parts.append(f'<text x="{x:.1f}" y="12" font-size="10" text-anchor="middle">{html.escape(c[:8])}</text>')
    for e in events:
        x, y = pos[e["hash"]]
        for parent, color in ((e.get("self_parent"), "#bbb"), (e.get("other_parent"), "#9ecae1")):
            if parent in pos:
                px, py = pos[parent]
                parts.append(f'<line x1="{x:.1f}" y1="{y:.1f}" x2="{px:.1f}" y2="{py:.1f}" stroke="{color}"/>')
    for e in events:
        x, y = pos[e["hash"]]
        fill = "#d62728" if e.get("famous") else "#ff7f0e" if e.get("witness") else "#1f77b4"
        hollow = e.get("round_received") is None
        parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4" fill="{"white" if hollow else fill}" stroke="{fill}">'
                     f'<title>round {e["round"]} lamport {e["lamport"]} txs {e["transactions"]}</title></circle>')
    return f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}">{"".join(parts)}</svg>'


def _table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "<p>(none)</p>"
    keys = list(rows[0])
    head = "".join(f"<th>{html.escape(k)}</th>" for k in keys)

    def cell(value: Any) -> str:
        return html.escape(value if isinstance(value, str) else json.dumps(value))

    body = "".join("<tr>" + "".join(f"<td>{cell(r.get(k))}</td>" for k in keys) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def write_report(out: Path, report: dict[str, Any], graph: dict[str, Any] | None) -> tuple[Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    json_path = out / "report.json"
    json_path.write_text(json.dumps(report, indent=1) + "\n")
    series = report["series"]
    marks = [(f["started_s"], f["kind"]) for f in report["faults"] if not f["skipped"]]
    throughput = line_chart({f"{o} final/s": [tuple(p) for p in pts] for o, pts in series["final_per_s"].items()}
                            | {"acknowledged/s": [tuple(p) for p in series["acked_per_s"]]},
                            "seconds since load start", "actions/s", marks)
    figures = report["figures"]
    inv = report["invariants"]
    verdict = "PASS" if report["ok"] else "FAIL"
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>local simulation report</title>
<style>body{{font-family:sans-serif;max-width:980px;margin:1em auto}}table{{border-collapse:collapse;font-size:12px}}
td{{word-break:break-word}}
td,th{{border:1px solid #ccc;padding:2px 6px;text-align:left}}.pass{{color:#2ca02c}}.fail{{color:#d62728}}</style>
</head><body><h1>Local simulation: <span class="{verdict.lower()}">{verdict}</span></h1>
<p>{html.escape(json.dumps(report["config"]))}</p>
<h2>Figures</h2>{_table([{k: v for k, v in figures.items() if not isinstance(v, dict)}])}
<p>latency (submit to final receipt, s): {html.escape(json.dumps(figures["latency_s"]))}</p>
<p>same-run verify ceiling: {html.escape(json.dumps(figures.get("verify_ceiling")))}</p>
<h2>Invariants</h2>{_table([{k: v for k, v in inv.items() if k != "origins"}])}
{_table([{"origin": o, **{k: v for k, v in d.items() if k not in DETAIL_KEYS}}
         for o, d in inv["origins"].items()])}
<p>fork evidence: {html.escape(json.dumps({o: d.get("forkers_seen_by") for o, d in inv["origins"].items()}))}</p>
<h2>Faults</h2>{_table(report["faults"])}
<h2>Throughput over time</h2>{throughput}
<h2>Latency distribution ({figures["latency_s"]["count"]} actions sent with wait=true; seconds, log bins)</h2>
{histogram(series["latencies"], "seconds from submit to final receipt")}
<h2>Nodes</h2>{_table(report["nodes"])}
<h2>Hashgraph snapshot ({html.escape(str(report.get("graph_node")))}; red famous witness, orange witness,
hollow not yet ordered)</h2>{dag_svg(graph)}
</body></html>
"""
    html_path = out / "report.html"
    html_path.write_text(page)
    return json_path, html_path
