"""Properties of gossip among members over a faulty in-memory network (hypothesis).

For random schedules (delays that reorder, drops, duplicates) and 1, 3, 4, 7 or 10 members:
every two honest members have consensus orders (and chains of blocks) where one is a prefix of
the other, and once the network heals, rounds keep being decided and every transaction is
committed.  The same holds when one member of 4 (or two of 7) forks and shows different branches
to different halves of the network; the fork is then detected by every honest member.
"""

from __future__ import annotations

import sys
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).parent))
from simnet import MS, NetConfig, SimNet, SimNode  # noqa: E402


def fast(examples: int) -> settings:
    return settings(max_examples=examples, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def assert_prefix_agreement(nodes: list[SimNode]) -> None:
    orders = [nd.core.graph.consensus_order() for nd in nodes]
    chains = [[(b.index, b.transactions, b.hash) for b in nd.blocks] for nd in nodes]
    for a in range(len(nodes)):
        for b in range(a + 1, len(nodes)):
            k = min(len(orders[a]), len(orders[b]))
            assert orders[a][:k] == orders[b][:k], "consensus orders diverge"
            k = min(len(chains[a]), len(chains[b]))
            assert chains[a][:k] == chains[b][:k], "block chains diverge"
    for chain in chains:
        assert [index for index, _, _ in chain] == list(range(len(chain)))


def run_schedule(sim: SimNet, n_tx: int, step_ns: int, faulty_ns: int) -> set[bytes]:
    """Submit transactions at random members over the faulty period; return them."""
    submitted: set[bytes] = set()
    honest = [i for i, nd in enumerate(sim.nodes) if nd.core.id not in sim.forker_ids]
    for k in range(n_tx):
        tx = b"tx-%d" % k
        sim.submit(honest[sim.rng.randrange(len(honest))], tx)
        submitted.add(tx)
        sim.run_until(sim.now + step_ns)
    sim.run_until(faulty_ns)
    return submitted


def heal_and_wait(sim: SimNet, submitted: set[bytes], limit_ns: int) -> bool:
    """Stop faults; run until every honest member committed every transaction (or the limit)."""
    sim.config = NetConfig(min_delay_ns=sim.config.min_delay_ns, max_delay_ns=sim.config.max_delay_ns)
    deadline = sim.now + limit_ns
    while sim.now < deadline:
        if all(submitted <= {tx for b in nd.blocks for tx in b.transactions} for nd in sim.honest()):
            return True
        sim.run_until(sim.now + 20 * MS)
    return False


@fast(120)
@given(
    n=st.sampled_from([1, 3, 4, 7, 10]),
    wire=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
    drop=st.sampled_from([0.0, 0.05, 0.2, 0.4]),
    duplicate=st.sampled_from([0.0, 0.1]),
    max_delay_ms=st.integers(1, 20),
    n_tx=st.integers(1, 6),
)
def test_honest_members_agree_and_keep_deciding(
    n: int, wire: bool, seed: int, drop: float, duplicate: float, max_delay_ms: int, n_tx: int
) -> None:
    config = NetConfig(min_delay_ns=MS // 2, max_delay_ns=max_delay_ms * MS, drop=drop, duplicate=duplicate)
    sim = SimNet(n, seed, config=config, wire=wire and n <= 4)  # encoding costs most with 10 members
    submitted = run_schedule(sim, n_tx, 7 * MS, 60 * MS)
    assert_prefix_agreement(sim.nodes)
    assert heal_and_wait(sim, submitted, 3000 * MS), "no progress after the network healed"
    assert_prefix_agreement(sim.nodes)
    for nd in sim.nodes:
        assert nd.core.graph.next_to_process > 0 and not nd.penalised
        committed = [tx for b in nd.blocks for tx in b.transactions]
        assert len(committed) == len(set(committed)) == len(submitted)  # each exactly once


@fast(30)
@given(
    shape=st.sampled_from([(4, 1), (7, 2)]),
    seed=st.integers(0, 2**32 - 1),
    drop=st.sampled_from([0.0, 0.1, 0.25]),
    fork_at_ms=st.integers(0, 40),
    n_tx=st.integers(1, 5),
)
def test_forkers_are_detected_and_honest_members_still_agree(
    shape: tuple[int, int], seed: int, drop: float, fork_at_ms: int, n_tx: int
) -> None:
    n, forkers = shape
    sim = SimNet(n, seed, config=NetConfig(drop=drop), forkers=forkers, fork_at_ns=fork_at_ms * MS, wire=False)
    submitted = run_schedule(sim, n_tx, 6 * MS, 80 * MS)
    assert_prefix_agreement(sim.honest())
    assert heal_and_wait(sim, submitted, 3000 * MS), "honest members stopped deciding"
    sim.run_until(sim.now + 100 * MS)
    honest = sim.honest()
    assert_prefix_agreement(honest)
    for nd in honest:
        assert set(nd.core.graph.forkers()) == sim.forker_ids
        assert not nd.penalised  # valid branches are not the relaying peer's fault
    assert any(nd.core.graph.fork_evidence for nd in honest)


def check_many_branches(n: int, forkers: int, branches: int, seed: int, drop: float, fork_at_ms: int) -> None:
    """Each forker shows `branches` branches, each to its own share of the honest members: every
    branch is stored (none refused), honest members agree, keep deciding and flag every forker."""
    sim = SimNet(
        n, seed, config=NetConfig(drop=drop), forkers=forkers, branches=branches, fork_at_ns=fork_at_ms * MS,
        wire=False,
    )
    submitted = run_schedule(sim, 3, 6 * MS, 80 * MS)
    assert_prefix_agreement(sim.honest())
    assert heal_and_wait(sim, submitted, 3000 * MS), "honest members stopped deciding"
    sim.run_until(sim.now + 100 * MS)
    honest = sim.honest()
    assert_prefix_agreement(honest)
    for nd in honest:
        graph = nd.core.graph
        assert set(graph.forkers()) == sim.forker_ids
        assert not graph.fork_rejections  # <= 10 branches: none refused
        assert not nd.penalised
        assert graph.fork_evidence and {a.creator for a, _ in graph.fork_evidence} == sim.forker_ids
    widest = max(len(slot) for nd in honest for col in nd.core.graph.anc.chains for slot in col.values())
    assert widest >= min(branches, 3)  # several branches of one index did reach honest members


@fast(8)
@given(
    branches=st.integers(3, 10),
    seed=st.integers(0, 2**32 - 1),
    drop=st.sampled_from([0.0, 0.1]),
    fork_at_ms=st.integers(0, 40),
)
def test_a_forker_with_up_to_ten_branches_leaves_honest_members_agreeing(
    branches: int, seed: int, drop: float, fork_at_ms: int
) -> None:
    check_many_branches(4, 1, branches, seed, drop, fork_at_ms)


def test_two_forkers_of_seven_with_ten_branches_each() -> None:
    check_many_branches(7, 2, 10, seed=2, drop=0.1, fork_at_ms=10)


@fast(6)
@given(seed=st.integers(0, 2**32 - 1), drop=st.sampled_from([0.0, 0.2]))
def test_agreement_with_real_signatures(seed: int, drop: float) -> None:
    sim = SimNet(4, seed, config=NetConfig(drop=drop), verify_signatures=True)
    submitted = run_schedule(sim, 4, 10 * MS, 60 * MS)
    assert heal_and_wait(sim, submitted, 3000 * MS)
    assert_prefix_agreement(sim.nodes)
    assert all(nd.blocks and not nd.penalised for nd in sim.nodes)
