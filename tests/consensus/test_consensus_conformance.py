"""Conformance: every Babble test graph, every asserted value in its `expected`.

Left out on purpose (Babble internals with no counterpart in our design, as the conformance
README allows): frames' `roots`, `pending_loaded_events_*`, `after_reset_from_block1_known` and
babble_sparse's `reset_equivalence` (we have no Reset-from-frame), babble_round's `roots`.
Everything else in `expected` is checked, plus the consensus order up to the listed Lamport tie
groups (from `derived_not_asserted`, which CONSENSUS.md makes binding for the order).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from node.consensus.blocks import median_timestamp
from node.consensus.replay import ReplayRun, member_key, replay, replay_report

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent.parent
SHARED = REPO_ROOT.parent / "shared" / "conformance" / "babble"
VENDORED = HERE / "data" / "babble"
FOLDER = SHARED if SHARED.is_dir() else VENDORED
FILES = sorted(p.name for p in FOLDER.glob("*.json"))

SKIPPED_KEYS = {
    "pending_loaded_events_after_insert",
    "pending_loaded_events_after_process",
    "after_reset_from_block1_known",
    "reset_equivalence",
    "roots",
}


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FOLDER / name).read_text())
    return data


def ids_in_insertion_order(run: ReplayRun, pred: Any) -> list[str]:
    return [e for e in run.order if pred(run.graph.record(run.h(e)))]


def by_creator_index(run: ReplayRun, mapping: dict[bytes, int]) -> dict[str, str]:
    """{member key: index} -> {member name: event id} (the Babble tables name events)."""
    out = {}
    for key, index in mapping.items():
        rec = run.graph.anc.chains[run.graph._col_of[key]][index][0]
        out[run.names[key]] = run.id_of[rec.hash]
    return out


def check_common(run: ReplayRun, expected: dict[str, Any]) -> set[str]:
    """Check the keys shared by several files; return the keys it handled."""
    g, h = run.graph, run.h
    handled = set()
    if "round" in expected:
        assert {e: g.round_of(h(e)) for e in expected["round"]} == expected["round"]
        handled.add("round")
    if "lamport_timestamp" in expected:
        assert {e: g.lamport(h(e)) for e in expected["lamport_timestamp"]} == expected["lamport_timestamp"]
        handled.add("lamport_timestamp")
    if "witnesses" in expected:
        for rnd, ids in expected["witnesses"].items():
            got = sorted(run.id_of[w] for w in g.witnesses(int(rnd)))
            assert got == sorted(ids), f"witnesses of round {rnd}"
        handled.add("witnesses")
    if "witness" in expected:
        assert {e: g.is_witness(h(e)) for e in expected["witness"]} == expected["witness"]
        handled.add("witness")
    if "famous" in expected:
        assert {e: g.fame(h(e)) for e in expected["famous"]} == expected["famous"]
        handled.add("famous")
    if "round_received" in expected:
        assert {e: g.round_received(h(e)) for e in expected["round_received"]} == expected["round_received"]
        handled.add("round_received")
    if "received_events_per_round" in expected:
        for rnd, ids in expected["received_events_per_round"].items():
            got = ids_in_insertion_order(run, lambda r, rnd=int(rnd): r.round_received == rnd)
            assert got == ids, f"received in round {rnd}"
        handled.add("received_events_per_round")
    for key in ("pending_rounds_after_decide_fame", "pending_rounds_after_divide"):
        if key in expected:
            # Decided-ness never changes once set, so it can be read after the whole pipeline.
            assert [[r, g.round_decided(r)] for r, _ in expected[key]] == expected[key]
            handled.add(key)
    if "pending_rounds_after_process" in expected:
        assert [list(p) for p in g.pending_rounds()] == expected["pending_rounds_after_process"]
        handled.add("pending_rounds_after_process")
    if "undetermined_events_after_decide_round_received" in expected:
        got = ids_in_insertion_order(run, lambda r: r.round_received is None)
        assert got == expected["undetermined_events_after_decide_round_received"]
        handled.add("undetermined_events_after_decide_round_received")
    if "consensus_events_count" in expected:
        assert len(g.consensus_order()) == expected["consensus_events_count"]
        handled.add("consensus_events_count")
    if "last_round" in expected:
        assert g.last_round == expected["last_round"]
        handled.add("last_round")
    if "known" in expected:
        assert {run.names[k]: i for k, i in g.known().items()} == expected["known"]
        handled.add("known")
    if "anchor_block" in expected:
        assert expected["anchor_block"] is None and g.signatures.anchor_block() is None
        handled.add("anchor_block")
    return handled


def check_blocks(run: ReplayRun, expected_blocks: list[dict[str, Any]]) -> None:
    blocks = [p.block for p in run.processed if p.block is not None]
    assert len(blocks) >= len(expected_blocks)
    for want, got in zip(expected_blocks, blocks, strict=False):
        txs = [t.decode() for t in got.transactions]
        assert got.index == want["index"]
        assert got.round_received == want["round_received"]
        if "transactions" in want:
            assert txs == want["transactions"]
        if "transactions_count" in want:
            assert len(txs) == want["transactions_count"]
        for key, value in want.items():
            m = re.fullmatch(r"transactions\[(\d+)\]", key)
            if m:
                assert txs[int(m.group(1))] == value
        if "peers_hash_of_peer_set_at_round" in want:
            assert got.peers_hash == run.graph.peers.at(want["peers_hash_of_peer_set_at_round"]).hash


def check_order_up_to_ties(run: ReplayRun, derived: dict[str, Any]) -> None:
    if "consensus_order" not in derived:
        return
    group_of: dict[str, int] = {}
    for n, group in enumerate(derived.get("lamport_tie_groups_in_consensus_order", [])):
        for e in group:
            group_of[e] = n

    def canon(order: list[str]) -> list[Any]:
        out: list[Any] = []
        for e in order:
            key = ("tie", group_of[e]) if e in group_of else e
            if not out or out[-1] != key or key == e:
                out.append(key)
        return out

    got = [run.id_of[x] for x in run.graph.consensus_order()]
    assert sorted(got) == sorted(derived["consensus_order"])
    assert canon(got) == canon(derived["consensus_order"])
    # Inside a tie group the order is ours: (lamport, whitened hash), never Babble's signature R.
    lamports = [run.graph.lamport(run.h(e)) for e in got]
    assert lamports == sorted(lamports) or len({run.graph.round_received(run.h(e)) for e in got}) > 1


def frame_checks(run: ReplayRun, expected: dict[str, Any]) -> set[str]:
    handled = set()
    for key, frame in expected.items():
        m = re.fullmatch(r"frame_round_(\d+)", key)
        if not m:
            continue
        rnd = int(m.group(1))
        got = [run.id_of[x] for x in run.graph.consensus_order() if run.graph.round_received(x) == rnd]
        assert sorted(got) == sorted(frame["events"])
        ts = re.fullmatch(r"median\(Timestamp of ([\w,]+)\)", frame["timestamp"])
        assert ts is not None
        stamps = [run.graph.event(run.h(e)).timestamp for e in ts.group(1).split(",")]
        # Our block of that round carries the same median (the frame timestamp in Babble).
        block = next(p.block for p in run.processed if p.round_received == rnd)
        if block is not None:
            assert block.timestamp == median_timestamp(stamps)
        handled.add(key)  # `roots` inside a frame are Babble-internal: not checked
    return handled


@pytest.mark.parametrize("name", FILES)
def test_conformance_file(name: str) -> None:
    data = load(name)
    expected = data["expected"]
    if name == "babble_funky.json":
        check_funky(data)
        return
    run = replay(data)
    handled = check_common(run, expected)
    handled |= frame_checks(run, expected)
    if "blocks" in expected:
        check_blocks(run, expected["blocks"])
        handled.add("blocks")
    handled |= check_ancestry_tables(run, expected)
    handled |= check_round_tables(run, expected)
    check_order_up_to_ties(run, data["derived_not_asserted"])
    assert report_matches_graph(run)
    assert set(expected) - handled <= SKIPPED_KEYS, set(expected) - handled - SKIPPED_KEYS


def check_funky(data: dict[str, Any]) -> None:
    partial = replay(data, exclude=data["partial_variant_excludes"])
    exp = data["expected"]["partial"]
    assert partial.graph.last_round == exp["last_round"]
    assert [[r, partial.graph.round_decided(r)] for r, _ in exp["pending_rounds_after_decide_fame"]] == exp[
        "pending_rounds_after_decide_fame"
    ]
    # Rounds 1 and 2 are decided before round 0, yet nothing is processed until round 0 is.
    assert [list(p) for p in partial.graph.pending_rounds()] == exp["pending_rounds_after_process"]
    assert partial.graph.consensus_order() == []
    for rnd, ids in data["derived_partial_witnesses"].items():
        assert sorted(partial.id_of[w] for w in partial.graph.witnesses(int(rnd))) == sorted(ids)
    full = replay(data)
    exp = data["expected"]["full"]
    assert full.graph.last_round == exp["last_round"]
    assert [list(p) for p in full.graph.pending_rounds()] == exp["pending_rounds_after_process"]
    blocks = [p.block for p in full.processed if p.block is not None]
    assert {str(b.index): len(b.transactions) for b in blocks} == exp["block_transaction_counts"]
    check_order_up_to_ties(full, data["derived_not_asserted"])


def check_ancestry_tables(run: ReplayRun, expected: dict[str, Any]) -> set[str]:
    g, h = run.graph, run.h
    handled = set()
    for key, relation in (("ancestor", g.ancestor), ("see", g.see), ("self_ancestor", g.self_ancestor)):
        if key in expected:
            for x, y, want in expected[key]:
                assert relation(h(x), h(y)) is want, f"{key}({x}, {y})"
            handled.add(key)
    return handled


def check_round_tables(run: ReplayRun, expected: dict[str, Any]) -> set[str]:
    g, h = run.graph, run.h
    handled = set()
    if "strongly_see" in expected:
        for x, y, want in expected["strongly_see"]:
            assert g.strongly_see(h(x), h(y), 0) is want, f"strongly_see({x}, {y})"
        handled.add("strongly_see")
    if "first_descendants" in expected:
        for e, table in expected["first_descendants"].items():
            assert by_creator_index(run, g.first_descendants(h(e))) == table, e
        handled.add("first_descendants")
    if "last_ancestors" in expected:
        for e, table in expected["last_ancestors"].items():
            assert by_creator_index(run, g.last_ancestors(h(e))) == table, e
        handled.add("last_ancestors")
    if "round_diff" in expected:
        for x, y, diff in expected["round_diff"]:
            assert g.round_of(h(x)) - g.round_of(h(y)) == diff
        handled.add("round_diff")
    if "undetermined_events_after_insert" in expected:
        got = ids_in_insertion_order(run, lambda r: r.round_received is None)
        assert got == expected["undetermined_events_after_insert"]
        handled.add("undetermined_events_after_insert")
    return handled


def report_matches_graph(run: ReplayRun) -> bool:
    report = replay_report(run)
    return all(report["events"][e]["round"] == run.graph.round_of(run.h(e)) for e in run.order)


@pytest.mark.parametrize("name", FILES)
def test_consensus_after_every_insert_matches_one_run(name: str) -> None:
    data = load(name)
    once, each = replay(data), replay(data, run_each=True)
    assert replay_report(once) == replay_report(each)
    blocks_once = [p.block for p in once.processed if p.block]
    blocks_each = [p.block for p in each.processed if p.block]
    assert blocks_once == blocks_each


def test_vendored_copy_equals_shared() -> None:
    if not SHARED.is_dir():
        pytest.skip("the shared conformance folder is absent; the vendored copy is in use")
    shared = {p.name: p.read_bytes() for p in SHARED.glob("*.json")}
    vendored = {p.name: p.read_bytes() for p in VENDORED.glob("*.json")}
    assert shared == vendored


def test_member_keys_are_distinct() -> None:
    assert member_key("n0") != member_key("n1") and len(member_key("n0")) == 32
