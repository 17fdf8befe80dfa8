"""Gossip sync messages, the member core and the self-event policy."""

from __future__ import annotations

import random
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node import codec
from node.consensus.errors import ConsensusUsageError, RejectReason
from node.consensus.event import BlockSignature, Event
from node.consensus.hashgraph import Hashgraph
from node.consensus.node_core import MemberCore, TransactionRefused
from node.consensus.peers import PeerSchedule, PeerSet
from node.consensus.policy import Activity, SelfEventPolicy
from node.consensus.sync import (
    MAX_FRAME_BYTES,
    EagerPush,
    SyncDecodeError,
    SyncRequest,
    SyncResponse,
    decode_message,
    encode_message,
    fit_frame,
)
from node.crypto import PrivateKey

sys.path.insert(0, str(Path(__file__).parent))
from simnet import MS, NetConfig, SimNet  # noqa: E402

KEYS = [PrivateKey.from_seed(b"sync-%d" % i) for i in range(4)]
IDS = [k.public for k in KEYS]


def cores(n: int = 4, verify: bool = True, **kw: object) -> list[MemberCore]:
    peers = PeerSet.of(IDS[:n])
    return [
        MemberCore(k, Hashgraph(PeerSchedule(peers), verify_signatures=verify), **kw)  # type: ignore[arg-type]
        for k in KEYS[:n]
    ]


def sync(a: MemberCore, b: MemberCore, now: int):  # type: ignore[no-untyped-def]
    """One full exchange through the wire encoding: a pulls from b, then pushes back."""
    req = decode_message(encode_message(a.make_sync_request(b.id)))
    assert isinstance(req, SyncRequest)
    resp = decode_message(encode_message(b.handle_sync_request(req)))
    assert isinstance(resp, SyncResponse)
    out = a.handle_sync_response(b.id, resp, now)
    if out.push is not None:
        push = decode_message(encode_message(out.push))
        assert isinstance(push, EagerPush)
        b.handle_eager_push(a.id, push, now)
    return out


# -- messages -------------------------------------------------------------------------------


def test_messages_round_trip_through_the_codec() -> None:
    e0 = Event.create(KEYS[0], index=0, self_parent=None, other_parent=None, timestamp=5, transactions=(b"x",))
    e1 = Event.create(KEYS[1], index=0, self_parent=None, other_parent=None, timestamp=6)
    messages = [
        SyncRequest(IDS[0], {IDS[0]: 3, IDS[1]: -1}, {IDS[2]: (4, (b"h" * 32, b"i" * 32))}, {IDS[0]: b"j" * 32}),
        SyncResponse((e0, e1), {IDS[1]: 7}, True, {IDS[3]: (0, ())}, {IDS[1]: b"k" * 32}),
        EagerPush((e1,)),
    ]
    for message in messages:
        back = decode_message(encode_message(message))
        assert back == message
    resp = decode_message(encode_message(messages[1]))
    assert isinstance(resp, SyncResponse) and all(e.verify_signature() for e in resp.events)


@pytest.mark.parametrize(
    "obj",
    [
        [],
        [9, b"x"],
        [1, IDS[0], {}, {}],  # a field missing
        [1, b"short", {}, {}, {}],
        [1, IDS[0], {b"k": 1}, {}, {}],
        [1, IDS[0], {IDS[1]: "one"}, {}, {}],
        [1, IDS[0], {IDS[1]: -2}, {}, {}],
        [1, IDS[0], {}, {IDS[1]: [0, [b"short"]]}, {}],
        [1, IDS[0], {}, {IDS[1]: [0, [b"h" * 32] * 17]}, {}],
        [1, IDS[0], {}, {}, {IDS[1]: b"short"}],
        [2, [b"not an event"], {}, False, {}, {}],
        [2, [], {}, "yes", {}, {}],
        [3, "events"],
        [3, [1, 2]],
    ],
)
def test_malformed_messages_raise_typed_errors(obj: object) -> None:
    with pytest.raises(SyncDecodeError):
        decode_message(codec.pack(obj))


def test_garbage_and_oversized_frames_are_refused() -> None:
    with pytest.raises(SyncDecodeError):
        decode_message(b"\xc1\xff\x00garbage")
    with pytest.raises(SyncDecodeError):
        decode_message(b"\x00" * (MAX_FRAME_BYTES + 1))


def test_a_response_over_the_sync_limit_is_refused() -> None:
    events = tuple(
        Event.create(KEYS[i % 4], index=i // 4, self_parent=None, other_parent=None, timestamp=i) for i in range(12)
    )
    data = encode_message(SyncResponse(events, {}, False))
    assert len(decode_message(data, limit=12).events) == 12  # type: ignore[union-attr]
    with pytest.raises(SyncDecodeError, match="limit"):
        decode_message(data, limit=11)


def test_fit_frame_keeps_frames_under_one_mebibyte() -> None:
    big = b"z" * (300 * 1024)
    events = [
        Event.create(KEYS[0], index=i, self_parent=None, other_parent=None, timestamp=i, transactions=(big,))
        for i in range(5)
    ]
    taken, more = fit_frame(events, {IDS[0]: 1})
    assert len(taken) == 3 and more
    assert len(encode_message(SyncResponse(tuple(taken), {IDS[0]: 1}, more))) <= MAX_FRAME_BYTES
    taken, more = fit_frame(events[:2], {})
    assert len(taken) == 2 and not more


# -- the member core ------------------------------------------------------------------------


def test_sync_inserts_creates_an_event_on_the_peer_head_and_pushes_it_back() -> None:
    a, b = cores(2)
    a.submit_transaction(b"pay alice")
    first = sync(b, a, 1_000)  # b learns a's first event (a has none yet: a creates on its first sync)
    assert first.created is not None and first.created.index == 0
    out = sync(a, b, 2_000)
    assert out.created is not None
    assert out.created.other_parent == b.head.hash  # type: ignore[union-attr]
    assert out.created.transactions == (b"pay alice",) and not a.pending_transactions
    assert out.rejected == () and not out.penalise
    assert b.graph.has(out.created.hash)  # the push carried it back
    assert set(a.graph.known().items()) == set(b.graph.known().items())


def test_response_is_capped_by_the_sync_limit_and_says_more() -> None:
    a, b = cores(2, sync_limit=5)
    rng = random.Random(1)
    for step in range(12):
        a.submit_transaction(b"%d" % step)  # busy members create an event after every sync
        sync(a, b, step * 1000) if rng.random() < 0.5 else sync(b, a, step * 1000)
    assert b.graph.event_count() > 10
    fresh = cores(2, sync_limit=5)[0]
    resp = b.handle_sync_request(fresh.make_sync_request(b.id))
    assert len(resp.events) == 5 and resp.more
    out = fresh.handle_sync_response(b.id, resp, 10**9)
    assert out.more and out.created is None  # not caught up: wait before building on the peer's head
    rounds = 1
    while out.more:
        out = fresh.handle_sync_response(b.id, b.handle_sync_request(fresh.make_sync_request(b.id)), 10**9)
        rounds += 1
    assert rounds >= 2 and fresh.graph.event_count() >= b.graph.event_count()


def test_bad_signatures_are_rejected_and_the_peer_reported() -> None:
    a, b = cores(2)
    good = Event.create(KEYS[1], index=0, self_parent=None, other_parent=None, timestamp=1)
    forged = Event(good.creator, 0, None, None, 2, (b"forged",), signature=good.signature)
    out = a.handle_sync_response(b.id, SyncResponse((forged, good), {}, False), 10)
    assert [exc.reason for _, exc in out.rejected] == [RejectReason.BAD_SIGNATURE]
    assert out.penalise and a.graph.has(good.hash) and not a.graph.has(forged.hash)


def test_missing_parents_are_rejected_without_blaming_the_peer() -> None:
    a, b = cores(2)
    e0 = Event.create(KEYS[1], index=0, self_parent=None, other_parent=None, timestamp=1)
    e1 = Event.create(KEYS[1], index=1, self_parent=e0.hash, other_parent=None, timestamp=2)
    out = a.handle_eager_push(b.id, EagerPush((e1,)), 10)
    assert [exc.reason for _, exc in out.rejected] == [RejectReason.UNKNOWN_PARENT] and not out.penalise
    out = a.handle_eager_push(b.id, EagerPush((e1, e0)), 10)  # reordered on the wire: recovered
    assert out.rejected == () and set(out.inserted) == {e0.hash, e1.hash}


def test_block_signatures_and_transactions_ride_in_the_next_event() -> None:
    a, b = cores(2)
    sig = BlockSignature(a.id, 0, b"s" * 64)
    a.add_block_signature(sig)
    a.submit_transaction(b"t1")
    a.submit_transaction(b"t2")
    event = a.create_event(50, None)
    assert event.block_signatures == (sig,) and event.transactions == (b"t1", b"t2")
    assert a.activity() == Activity(0, 0, 0, 1)
    with pytest.raises(TransactionRefused):
        a.submit_transaction(b"x" * (600 * 1024))
    small = cores(2, max_pending_bytes=10)[0]
    small.submit_transaction(b"123456")
    with pytest.raises(TransactionRefused, match="full"):
        small.submit_transaction(b"123456")


def test_own_timestamps_never_go_back() -> None:
    a = cores(2)[0]
    e0 = a.create_event(1_000, None)
    e1 = a.create_event(500, None)
    assert e1.timestamp > e0.timestamp and e1.self_parent == e0.hash


def test_choose_peer_avoids_the_last_one() -> None:
    a = cores(4)[0]
    rng = random.Random(0)
    last = None
    for _ in range(30):
        peer = a.choose_peer(rng)
        assert peer is not None and peer != a.id and peer != last
        a.make_sync_request(peer)
        last = peer
    two = cores(2)[0]
    two.make_sync_request(IDS[1])
    assert two.choose_peer(rng) == IDS[1]  # the only peer, even if it was the last one
    assert cores(1)[0].choose_peer(rng) is None


def test_timers_follow_the_heartbeats() -> None:
    policy = SelfEventPolicy(heartbeat_ns=10, slow_heartbeat_ns=1000)
    a = cores(2, policy=policy)[0]
    assert a.get_timer() == 0  # gossip at once on start
    action = a.handle_timer(5, random.Random(0))
    assert action is not None and action[0] == IDS[1] and isinstance(action[1], SyncRequest)
    assert a.get_timer() == 1005  # idle: slow heartbeat
    a.submit_transaction(b"t")
    assert a.get_timer() == 15  # busy: fast heartbeat


def test_a_lone_member_creates_and_orders_alone() -> None:
    lone = cores(1, policy=SelfEventPolicy(heartbeat_ns=10, slow_heartbeat_ns=100))[0]
    lone.submit_transaction(b"solo")
    now = 0
    for _ in range(10):
        now = max(now + 1, lone.get_timer())
        assert lone.handle_timer(now, random.Random(0)) is None
        assert lone.timer_created is None or lone.timer_created == lone.head
    blocks = lone.next_blocks()
    assert [b.transactions for b in blocks if b.election is None] == [(b"solo",)]
    assert all(b.round_received % 10 == 0 for b in blocks if b.election is not None)  # election rounds
    assert lone.head is not None and lone.head.index >= 2
    assert lone.next_blocks() == []  # drained


def test_policy_intervals_and_event_creation() -> None:
    policy = SelfEventPolicy(heartbeat_ns=3, slow_heartbeat_ns=30)
    idle, busy = Activity(), Activity(pending_transactions=1)
    assert policy.interval(idle) == 30 and policy.interval(busy) == 3
    assert policy.interval(Activity(loaded_undetermined=2)) == 3
    assert policy.next_deadline(None, idle) == 0 and policy.next_deadline(100, busy) == 103
    assert not policy.create_after_sync(idle, loaded_received=0, caught_up=True)
    assert policy.create_after_sync(idle, loaded_received=1, caught_up=True)
    assert policy.create_after_sync(busy, loaded_received=0, caught_up=True)
    assert not policy.create_after_sync(busy, loaded_received=3, caught_up=False)
    assert policy.create_without_peers(busy) and not policy.create_without_peers(idle)
    with pytest.raises(ConsensusUsageError):
        SelfEventPolicy(heartbeat_ns=10, slow_heartbeat_ns=5)


# -- the network ----------------------------------------------------------------------------


def test_four_members_over_the_network_produce_identical_blocks() -> None:
    sim = SimNet(4, seed=7, verify_signatures=True, config=NetConfig(drop=0.05, duplicate=0.05))
    for i in range(4):
        for j in range(6):
            sim.submit(i, b"tx-%d-%d" % (i, j))
    sim.run_until(400 * MS)
    chains = [[(b.index, b.transactions, b.hash) for b in nd.blocks] for nd in sim.nodes]
    assert chains[0] and all(chain == chains[0] for chain in chains)
    committed = sorted(tx for _, txs, _ in chains[0] for tx in txs)
    assert committed == sorted(b"tx-%d-%d" % (i, j) for i in range(4) for j in range(6))
    assert [index for index, _, _ in chains[0]] == list(range(len(chains[0])))
    assert not any(nd.penalised for nd in sim.nodes)


def test_idle_members_slow_down() -> None:
    sim = SimNet(4, seed=3)
    sim.submit(0, b"only one")
    sim.run_until(300 * MS)
    before = sim.sent
    events_before = sim.nodes[0].core.graph.event_count()
    sim.run_until(800 * MS)
    assert all(nd.blocks for nd in sim.nodes)
    # Idle: one sync per slow heartbeat (50 ms) per member, about 3 messages each, and no events.
    assert sim.sent - before <= 4 * (500 // 50 + 1) * 3
    assert sim.nodes[0].core.graph.event_count() == events_before


def test_a_fork_neither_side_has_seen_is_found_through_heads() -> None:
    a, b, forker = cores(3)
    x = Event.create(forker.key, index=0, self_parent=None, other_parent=None, timestamp=1, transactions=(b"x",))
    y = Event.create(forker.key, index=0, self_parent=None, other_parent=None, timestamp=2, transactions=(b"y",))
    a.graph.insert(x)
    b.graph.insert(y)
    assert a.graph.known() == b.graph.known()  # a Known map alone cannot tell the branches apart
    sync(a, b, 10)
    assert a.graph.forkers() == [forker.id] and b.graph.forkers() == [forker.id]
    assert a.graph.has(y.hash) and b.graph.has(x.hash)
    request = a.make_sync_request(b.id)
    assert request.forks[forker.id][0] == 0 and set(request.forks[forker.id][1]) == {x.hash, y.hash}
    assert b.handle_sync_request(request).events == ()  # tips say a holds both branches already


def test_next_rounds_feed_an_elector_identically_on_every_member() -> None:
    from node.consensus.election import Elector

    sim = SimNet(4, seed=11)
    for j in range(20):
        sim.submit(j % 4, b"e-%d" % j)
        sim.run_until((j + 1) * 20 * MS)
    per_node = []
    for nd in sim.nodes:
        elector = Elector(election_interval=2)
        rounds = nd.rounds
        assert [r.round_received for r in rounds] == list(range(len(rounds)))
        assert all(len(r.famous_witnesses) >= 3 and len(r.members) == 4 for r in rounds)
        per_node.append([elector.on_round(r.round_received, r.famous_witnesses, r.members) for r in rounds])
    shortest = min(len(records) for records in per_node)
    assert shortest >= 4 and sum(r is not None for r in per_node[0][:shortest]) >= 2
    assert all(records[:shortest] == per_node[0][:shortest] for records in per_node)


def test_a_member_outside_the_peer_set_creates_no_events() -> None:
    outsider_key = PrivateKey.from_seed(b"outsider")
    graph = Hashgraph(PeerSchedule(PeerSet.of(IDS[:3])), verify_signatures=False)
    graph.set_peer_set(6, PeerSet.of([*IDS[:3], outsider_key.public]))  # joins from round 6
    outsider = MemberCore(outsider_key, graph)
    a = cores(3, verify=False)[0]
    a.submit_transaction(b"t")
    sync(a, outsider, 1)
    out = outsider.handle_sync_response(a.id, a.handle_sync_request(outsider.make_sync_request(a.id)), 2)
    assert out.created is None and outsider.head is None and not outsider.is_member()


def test_pruned_members_agree_and_a_late_member_catching_up_still_sees_every_round() -> None:
    sim = SimNet(4, seed=2, keep_rounds=8)
    for j in range(60):
        sim.submit(j % 4, b"p-%d" % j)
        sim.run_until((j + 1) * 15 * MS)
    chains = [[(b.index, b.hash) for b in nd.blocks] for nd in sim.nodes]
    shortest = min(map(len, chains))
    assert shortest >= 5 and all(chain[:shortest] == chains[0][:shortest] for chain in chains)
    assert all(nd.core.graph.pruned_below > 0 for nd in sim.nodes)  # memory stays bounded
    # A member that kept everything hands its whole graph to a fresh member with a small window:
    # one run of consensus processes more rounds than the window, yet each round is reported.
    full = SimNet(4, seed=2)
    for j in range(30):
        full.submit(j % 4, b"q-%d" % j)
        full.run_until((j + 1) * 15 * MS)
    events = tuple(full.nodes[0].core.graph.events_since({}, 1 << 30))
    late = MemberCore(full.keys[1], Hashgraph(PeerSchedule(full.members), verify_signatures=False, keep_rounds=8))
    late.handle_eager_push(full.keys[0].public, EagerPush(events), 0)
    rounds = late.next_rounds()
    assert len(rounds) > 10 and [r.round_received for r in rounds] == list(range(len(rounds)))
    assert all(len(r.famous_witnesses) >= 3 for r in rounds)
    assert late.graph.pruned_below > 0
    reference = [(r.round_received, r.famous_witnesses) for r in full.nodes[0].rounds]
    assert [(r.round_received, r.famous_witnesses) for r in rounds][: len(reference)] == reference[: len(rounds)]


_VALID_FRAMES = [
    encode_message(SyncRequest(IDS[0], {IDS[1]: 2}, {IDS[2]: (1, (b"h" * 32,))}, {IDS[1]: b"k" * 32})),
    encode_message(
        SyncResponse(
            (Event.create(KEYS[0], index=0, self_parent=None, other_parent=None, timestamp=1, transactions=(b"x",)),),
            {IDS[0]: 0}, False,
        )
    ),
]


@settings(max_examples=300, deadline=None)
@given(
    frame=st.sampled_from(_VALID_FRAMES),
    cuts=st.lists(st.tuples(st.integers(0, 400), st.integers(0, 255)), max_size=4),
)
def test_decoder_never_fails_untyped_on_mutated_frames(frame: bytes, cuts: list[tuple[int, int]]) -> None:
    data = bytearray(frame)
    for position, value in cuts:
        data[position % len(data)] = value
    try:
        message = decode_message(bytes(data))
    except SyncDecodeError:
        return
    assert isinstance(message, (SyncRequest, SyncResponse, EagerPush))
    assert decode_message(encode_message(message)) == message  # whatever decodes re-encodes stably


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=300))
def test_decoder_never_fails_untyped_on_random_bytes(data: bytes) -> None:
    try:
        decode_message(data)
    except SyncDecodeError:
        pass


def test_reload_after_restoring_the_graph_finds_our_head_and_pending_work() -> None:
    a, b = cores(2, verify=False)
    a.submit_transaction(b"restored")
    sync(a, b, 1)
    restored = Hashgraph(PeerSchedule(PeerSet.of(IDS[:2])), verify_signatures=False)
    fresh = MemberCore(KEYS[0], restored)
    assert fresh.head is None and not fresh.activity().busy
    restored.insert_batch(a.graph.events_since({}, 100))
    fresh.reload()
    assert fresh.head == a.head and fresh.activity().busy  # the loaded event still awaits its order
