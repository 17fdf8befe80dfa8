"""The live DAG page: its script run against the real API.

With Chromium (`/usr/bin/chromium`) the page is loaded headless, its console checked for errors and
a screenshot saved to `artifacts/`.  Without it, Node.js (if present) runs the page's own inline
script with a minimal DOM (elements that record attributes and children) and the real `fetch`
against the running API, then reports what was drawn: this catches script errors and checks
that the drawing follows the data (dots per event, fork rings, witness marks, block rows).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import trio

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"

DOM_SHIM = r"""
const BASE = process.env.API_URL;
const realFetch = globalThis.fetch;
globalThis.fetch = (url, options) => realFetch(BASE + url, options);
class Elem {
  constructor(tag) { this.tag = tag; this.attrs = {}; this.children = []; this.listeners = {};
                     this._text = ""; this.className = ""; this.checked = false; this.value = "";
                     this.scrollTop = 5; }
  setAttribute(k, v) { this.attrs[k] = String(v); }
  getAttribute(k) { return this.attrs[k]; }
  appendChild(c) { this.children.push(c); c.parent = this; return c; }
  removeChild(c) { this.children.splice(this.children.indexOf(c), 1); return c; }
  get firstChild() { return this.children[0] || null; }
  addEventListener(kind, fn) { (this.listeners[kind] = this.listeners[kind] || []).push(fn); }
  set textContent(v) { this._text = String(v); this.children = []; }
  get textContent() { return this._text; }
  all(tag) { const out = [];
             const walk = (e) => { for (const c of e.children) { if (c.tag === tag) out.push(c); walk(c); } };
             walk(this); return out; }
}
const byId = {};
for (const id of ["svg", "graph", "node", "origin", "phase", "round", "decided", "block", "count", "follow",
                  "rounds", "paused", "err", "forkers", "blocks", "detail"]) byId[id] = new Elem(id);
byId.follow.checked = true; byId.rounds.value = "30";
const consoleErrors = [];
const origError = console.error;
console.error = (...a) => { consoleErrors.push(a.join(" ")); };
globalThis.document = { getElementById: (id) => byId[id], createElementNS: (ns, tag) => new Elem(tag),
                        createElement: (tag) => new Elem(tag) };
globalThis.setInterval = () => 0;
process.on("unhandledRejection", (e) => { consoleErrors.push(String(e)); });
"""

EPILOGUE = r"""
(async () => {
  const settle = async () => { for (let i = 0; i < 500 && busy; i++) await new Promise((r) => setTimeout(r, 10)); };
  await settle();
  const svg = byId.svg;
  const circles = svg.all("circle");
  const dots = circles.filter((c) => c.listeners.click);
  const rings = circles.filter((c) => c.attrs.stroke === "#ff4d6d");
  const witnesses = dots.filter((c) => c.attrs.stroke === "#ebcb8b");
  const famous = witnesses.filter((c) => c.attrs.fill === "#a3be8c");
  if (dots.length) { dots[dots.length - 1].listeners.click[0](); await new Promise((r) => setTimeout(r, 300)); }
  process.stdout.write(JSON.stringify({
    dots: dots.length, rings: rings.length, witnesses: witnesses.length, famous: famous.length,
    decidedBands: svg.all("text").filter((t) => t.textContent.endsWith("\u2713")).length,
    lines: svg.all("line").length, bands: svg.all("rect").length, blockRows: byId.blocks.children.length,
    err: byId.err.textContent, phase: byId.phase.textContent, origin: byId.origin.textContent,
    forkers: byId.forkers.textContent, detail: byId.detail.textContent.slice(0, 2000),
    width: Number(svg.attrs.width), scrollTop: byId.graph.scrollTop, errors: consoleErrors,
  }));
})();
"""


def nodejs() -> str | None:
    for candidate in ("/usr/bin/node", "/usr/bin/nodejs", shutil.which("nodejs")):
        if candidate and os.path.exists(candidate):
            try:
                out = subprocess.run([candidate, "--version"], capture_output=True, text=True, timeout=10).stdout
            except (OSError, subprocess.SubprocessError):
                continue
            if re.fullmatch(r"v(\d+)\..*", out.strip()) and int(out.strip()[1:].split(".")[0]) >= 18:
                return candidate
    return None


NODEJS = nodejs()
HAVE_CHROMIUM = os.path.exists(CHROMIUM)


async def page_script(api) -> str:
    import httpx

    async with httpx.AsyncClient() as c:
        html = (await c.get(api.url + "/")).text
    scripts = re.findall(r"<script>(.*?)</script>", html, re.S)
    assert len(scripts) == 1
    return scripts[0]


@pytest.mark.skipif(NODEJS is None, reason="NO NODE.JS >= 18: the page's script was not run here")
async def test_page_script_draws_the_real_graph(api, tmp_path):
    js = NODEJS
    assert js is not None
    script = await page_script(api)
    path = tmp_path / "page.js"
    path.write_text(DOM_SHIM + script + EPILOGUE)
    proc = await trio.run_process([js, str(path)], capture_stdout=True, capture_stderr=True, check=False,
                                  env={**os.environ, "API_URL": api.url})
    assert proc.returncode == 0, proc.stderr.decode()
    report = json.loads(proc.stdout)
    graph = api.node.graph
    window = [e for r in range(max(0, graph.last_round - 29), graph.last_round + 1)
              for e in (graph.rounds[r].events if r in graph.rounds else [])]
    assert report["errors"] == [] and report["err"] == ""
    assert report["dots"] == len(window)
    assert report["rings"] == 2  # the forked pair
    assert report["witnesses"] == sum(1 for e in window if e.witness)
    assert report["famous"] == sum(1 for e in window if e.witness and e.famous is True) > 0
    shown_rounds = {e.round for e in window}
    assert report["decidedBands"] == sum(1 for r in shown_rounds if r < graph.first_undecided) > 0
    assert report["lines"] > report["dots"]  # parent links plus member columns
    assert report["blockRows"] == 3 and report["phase"] == "consensus" and report["origin"] == "alpha.example"
    assert report["forkers"] == api.node.keys[0].fingerprint
    assert report["scrollTop"] == 0  # following the newest events
    clicked = json.loads(report["detail"])
    assert clicked["hash"] in {e.hash.hex() for e in window}


@pytest.mark.skipif(not HAVE_CHROMIUM, reason=f"NO CHROMIUM at {CHROMIUM}: the page was not rendered in a browser "
                    "(the Node.js test ran its script against the real API instead)")
async def test_page_in_headless_chromium(api):
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "api_dag_page.png"
    proc = await trio.run_process(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr", "--v=0",
         "--window-size=1400,900", "--virtual-time-budget=4000", f"--screenshot={shot}", api.url + "/"],
        capture_stdout=True, capture_stderr=True, check=False,
    )
    log = proc.stderr.decode(errors="replace")
    console_errors = [ln for ln in log.splitlines() if "CONSOLE" in ln and ("Error" in ln or "Uncaught" in ln)]
    assert console_errors == []
    assert shot.exists() and shot.stat().st_size > 1000
