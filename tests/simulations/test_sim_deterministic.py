"""The deterministic simulation: same seed, same chain; invariants hold over a seed sweep with
faults; a deliberately broken node is caught."""

import dataclasses
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from simulations.det_faults import FAULT_KINDS, parse_faults
from simulations.det_run import SimConfig, run

ALL = frozenset(FAULT_KINDS)
REPO = Path(__file__).resolve().parents[2]
SWEEP = SimConfig(0, nodes=4, faults=ALL, fault_seconds=4.0)


def test_same_seed_same_chain():
    cfg = SimConfig(11, faults=ALL, fault_seconds=3.0)
    first, second = run(cfg), run(cfg)
    assert first.ok and second.ok, (first.reason, second.reason)
    assert first.blocks > 0 and first.transactions > 0
    assert first.digest == second.digest
    assert (first.blocks, first.transactions, first.sim_seconds, first.stats) == (
        second.blocks, second.transactions, second.sim_seconds, second.stats
    )
    other = run(dataclasses.replace(cfg, seed=12))
    assert other.digest != first.digest  # the seed matters


def _cli_digest(hash_seed: str) -> str:
    env = dict(os.environ, PYTHONHASHSEED=hash_seed)
    out = subprocess.run(
        [sys.executable, "-c", "import sys; from simulations.deterministic import main; sys.exit(main(sys.argv[1:]))",
         "--seed", "5", "--faults", "all", "--fault-seconds", "2"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=True,
    ).stdout
    line = next(ln for ln in out.splitlines() if ln.startswith("seed 5: ok"))
    return line.split("digest=")[1].split()[0]


def test_chain_does_not_depend_on_the_hash_seed():
    # Across processes with different str/bytes hash seeds the run is the same byte for byte.
    assert _cli_digest("1") == _cli_digest("2")


@pytest.mark.timeout(900)
def test_sweep_200_seeds_with_faults():
    started, cpu_started = time.perf_counter(), time.process_time()
    failed = []
    for seed in range(200):
        result = run(dataclasses.replace(SWEEP, seed=seed))
        if not result.ok:
            failed.append((seed, result.reason))
            print(f"VIOLATION seed={seed}: {result.reason}")
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    print(f"200 seeds in {wall:.1f}s wall, {cpu:.1f}s CPU")
    assert not failed, f"failing (python -m simulations.deterministic --seed S --fault-seconds 4): {failed}"
    # The sweep's own cost: ~150 CPU-s here (one core).  Its wall time is that on a quiet machine but
    # several times more on the shared 2-core one (683 s at load average 10), so wall time is bounded
    # only where the runner is dedicated and says so (SIM_SWEEP_MAX_WALL, e.g. 300 in CI).
    assert cpu < float(os.environ.get("SIM_SWEEP_MAX_CPU", "300")), f"the sweep took {cpu:.0f} CPU-s"
    if "SIM_SWEEP_MAX_WALL" in os.environ:
        limit = float(os.environ["SIM_SWEEP_MAX_WALL"])
        assert wall < limit, f"the sweep took {wall:.0f}s of wall time (limit {limit:.0f}s)"


def _reverse_block(node: int, block):
    """Node 1 applies each block's transactions in reverse order."""
    if node == 1 and len(block.transactions) > 1:
        return dataclasses.replace(block, transactions=block.transactions[::-1])
    return block


def _drop_first(node: int, block):
    """Node 2 loses the first transaction of every block (and its state stays behind)."""
    if node == 2 and block.transactions:
        return dataclasses.replace(block, transactions=block.transactions[1:])
    return block


def test_wrong_order_node_is_caught():
    result = run(SimConfig(3, faults=parse_faults("drop,delay"), fault_seconds=3.0, apply_hook=_reverse_block))
    assert not result.ok
    assert result.reason.startswith("agreement: n1 block"), result.reason


def test_node_dropping_transactions_is_caught():
    result = run(SimConfig(4, faults=frozenset(), fault_seconds=2.0, apply_hook=_drop_first))
    assert not result.ok
    assert result.reason.startswith("agreement: n2"), result.reason


def test_liveness_deadline_is_enforced():
    result = run(SimConfig(5, faults=ALL, fault_seconds=2.0, liveness_seconds=0.001))
    assert not result.ok
    assert result.reason.startswith("liveness:"), result.reason


def test_cli_reports_a_violation_with_its_seed(capsys):
    from simulations import deterministic

    assert deterministic.main(["--seed", "7", "--faults", "none", "--fault-seconds", "1"]) == 0
    out = capsys.readouterr().out
    assert "seed 7: ok" in out and "digest=" in out
    assert deterministic.main(["--seed", "8", "--fault-seconds", "1", "--liveness-seconds", "0.001"]) == 1
    out = capsys.readouterr().out
    assert "VIOLATION seed=8: liveness:" in out


def test_wiped_node_rejoins_without_equivocating():
    # A node restarted with an empty disk builds on its own events learnt back from its peers.
    result = run(SimConfig(1, faults=parse_faults("wipe"), fault_seconds=4.0))
    assert result.ok, result.reason
