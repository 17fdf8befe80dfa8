"""ChainStore on real LevelDB: records by key, commit_block's rules, snapshot consistency."""

from __future__ import annotations

import hashlib
import threading
import time

import pytest

from node.storage.chain import Applied, ChainStore, StateReader
from node.storage.errors import AlreadyApplied, OutOfOrder


@pytest.fixture
def chain(tmp_path):
    with ChainStore.open(tmp_path / "chain", sync=False) as c:
        yield c


def h(n: int) -> bytes:
    return hashlib.sha256(b"%d" % n).digest()


def test_events_by_hash_and_by_creator(chain):
    chain.put_events([(h(i), b"alice", i, b"ev-a%d" % i) for i in range(5)])
    chain.put_event(h(100), b"alice2", 0, b"ev-other")  # a creator id extending another's
    assert chain.get_event(h(3)) == b"ev-a3"
    assert chain.event_hash_at(b"alice", 4) == h(4)
    assert chain.get_event_at(b"alice", 2) == b"ev-a2"
    assert chain.get_event_at(b"alice", 9) is None
    assert chain.last_event_index(b"alice") == 4
    assert chain.last_event_index(b"alice2") == 0
    assert chain.last_event_index(b"bob") is None
    assert list(chain.creator_events(b"alice", start=3)) == [(3, h(3)), (4, h(4))]
    assert len(list(chain.all_events())) == 6


def test_rounds_peer_sets_elections(chain):
    for r in (1, 2, 10):
        chain.put_round(r, b"round%d" % r)
    assert chain.get_round(2) == b"round2" and chain.get_round(3) is None
    assert chain.last_round() == 10
    chain.put_peer_set(0, b"genesis")
    chain.put_peer_set(20, b"with-dave")
    assert chain.peer_set_for(0) == (0, b"genesis")
    assert chain.peer_set_for(19) == (0, b"genesis")
    assert chain.peer_set_for(20) == (20, b"with-dave")
    assert chain.peer_set_for(10**6) == (20, b"with-dave")
    assert chain.get_peer_set(20) == b"with-dave"
    assert list(chain.peer_sets()) == [(0, b"genesis"), (20, b"with-dave")]
    chain.put_election(5, b"e5")
    chain.put_election(7, b"e7")
    assert chain.get_election(7) == b"e7"
    assert list(chain.elections(start=6)) == [(7, b"e7")]


def test_fork_evidence_and_block_signatures(chain):
    chain.put_fork_evidence(b"mallory", b"ev1", b"proof1")
    chain.put_fork_evidence(b"mallory", b"ev2", b"proof2")
    chain.put_fork_evidence(b"mal", b"ev9", b"proof9")
    assert chain.fork_evidence(b"mallory") == [(b"mallory", b"ev1", b"proof1"), (b"mallory", b"ev2", b"proof2")]
    assert len(chain.fork_evidence()) == 3
    chain.put_block_signature(3, b"alice", b"sigA")
    chain.put_block_signature(3, b"bob", b"sigB")
    chain.put_block_signature(4, b"alice", b"sig4")
    assert chain.block_signatures(3) == {b"alice": b"sigA", b"bob": b"sigB"}
    assert chain.block_signatures(5) == {}


def test_commit_block_writes_everything_and_marker(chain):
    assert chain.last_applied() is None and chain.last_block_index() is None
    chain.commit_block(
        0,
        b"block0",
        {b"acct/a": b"10", b"acct/b": b"20"},
        {b"act1": b"ok"},
        h(0),
        nonces={b"alice/1": b""},
        index_writes={b"by-balance/10/a": b""},
    )
    chain.commit_block(1, b"block1", {b"acct/a": None, b"acct/c": b"5"}, {b"act2": b"ok"}, h(1))
    assert chain.last_applied() == Applied(1, h(1))
    index, state_hash = chain.last_applied()  # unpacks like a tuple
    assert (index, state_hash) == (1, h(1))
    assert chain.get_block(0) == b"block0" and chain.last_block_index() == 1
    assert chain.blocks(0, 10) == [(0, b"block0"), (1, b"block1")]
    assert chain.blocks(1, 1) == [(1, b"block1")]
    assert chain.state_hash_at(0) == h(0)
    assert chain.get_state(b"acct/a") is None  # deleted by block 1
    assert list(chain.state.iterate(b"acct/")) == [(b"acct/b", b"20"), (b"acct/c", b"5")]
    assert chain.get_receipt(b"act1") == b"ok"
    assert chain.get_nonce(b"alice/1") == b""
    assert chain.state_index().get(b"by-balance/10/a") == b""


def test_double_apply_and_gaps_are_refused(chain):
    chain.commit_block(5, b"b5", {b"k": b"5"}, {}, h(5))  # the first block may start anywhere
    with pytest.raises(AlreadyApplied):
        chain.commit_block(5, b"again", {b"k": b"bad"}, {}, h(99))
    with pytest.raises(AlreadyApplied):
        chain.commit_block(2, b"old", {b"k": b"bad"}, {}, h(99))
    with pytest.raises(OutOfOrder):
        chain.commit_block(7, b"b7", {b"k": b"bad"}, {}, h(99))
    assert chain.get_state(b"k") == b"5"
    assert chain.get_block(7) is None and chain.last_applied() == (5, h(5))


def test_double_apply_refused_after_reopen(tmp_path):
    with ChainStore.open(tmp_path / "c") as c:
        c.commit_block(0, b"b0", {b"k": b"0"}, {}, h(0))
    with ChainStore.open(tmp_path / "c") as c:
        with pytest.raises(AlreadyApplied):
            c.commit_block(0, b"b0", {b"k": b"0"}, {}, h(0))
        c.commit_block(1, b"b1", {b"k": b"1"}, {}, h(1))
        assert c.last_applied() == (1, h(1))


def test_concurrent_commit_of_one_index_applies_once(chain):
    chain.commit_block(0, b"b0", {}, {}, h(0))
    results: list[str] = []
    barrier = threading.Barrier(4)

    def attempt(n: int) -> None:
        barrier.wait()
        try:
            chain.commit_block(1, b"b1-%d" % n, {b"winner": b"%d" % n}, {}, h(1))
            results.append("ok")
        except AlreadyApplied:
            results.append("refused")

    threads = [threading.Thread(target=attempt, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["ok", "refused", "refused", "refused"]
    assert chain.get_block(1) == b"b1-" + chain.get_state(b"winner")


def _state_summary(reader: StateReader) -> tuple[int, int]:
    values = {int(v) for _, v in reader.iterate(b"slot/")}
    assert len(values) == 1, f"torn state: {sorted(values)[:5]}"
    return values.pop(), int(reader.get(b"counter"))


def test_snapshots_see_a_whole_block_while_another_thread_commits(chain):
    chain.commit_block(0, b"b0", {b"slot/%03d" % j: b"0" for j in range(200)} | {b"counter": b"0"}, {}, h(0))
    stop = threading.Event()
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            i = 1
            while not stop.is_set():
                writes = {b"slot/%03d" % j: b"%d" % i for j in range(200)} | {b"counter": b"%d" % i}
                chain.commit_block(i, b"b%d" % i, writes, {}, h(i))
                i += 1
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        seen = set()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with chain.snapshot() as snap:
                marker = snap.last_applied()
                slot, counter = _state_summary(snap.state)
                assert slot == counter == marker.block_index
                assert snap.get_block(marker.block_index) == b"b%d" % marker.block_index
                assert snap.get_block(marker.block_index + 1) is None
                seen.add(marker.block_index)
            if len(seen) >= 5:
                break
    finally:
        stop.set()
        thread.join()
    assert not errors
    assert len(seen) >= 2  # the snapshots really overlapped with commits
