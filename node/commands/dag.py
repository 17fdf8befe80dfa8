"""`node dag ...`: offline tools on hashgraph files."""

from __future__ import annotations

import json
from pathlib import Path

import click

from node.consensus.replay import read_graph_file, replay, replay_report


@click.group("dag")
def dag() -> None:
    """Offline tools on hashgraph DAG files."""


@dag.command("replay")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON (the conformance replay format).")
def replay_command(file: Path, as_json: bool) -> None:
    """Replay a graph FILE (conformance format) and print rounds, fame, order and blocks."""
    report = replay_report(replay(read_graph_file(file)))
    if as_json:
        click.echo(json.dumps(report, indent=1, sort_keys=False))
        return
    for event_id, info in report["events"].items():
        famous = {True: "famous", False: "not famous", None: ""}[info["famous"]] if info["witness"] else ""
        click.echo(
            f"{event_id:>12}  round {info['round']:>3}  lamport {info['lamport']:>4}  "
            f"received {info['round_received']!s:>4}  {'witness' if info['witness'] else ''} {famous}".rstrip()
        )
    click.echo(f"consensus order: {' '.join(report['consensus_order'])}")
    for block in report["blocks"]:
        click.echo(f"block {block['index']}: round received {block['round_received']}, "
                   f"{len(block['transactions'])} transactions")


COMMANDS: list[click.Command] = [dag]
