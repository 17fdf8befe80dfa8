"""NodeView without HTTP: receipts (memory, storage, waiting), block_applied, signal queues."""

from __future__ import annotations

import trio
import trio.testing

from node.api import NodeView
from node.api.signals import SignalHub


def fresh_view(node) -> NodeView:
    """A view over the same store, as after a restart (nothing in memory)."""
    return NodeView(node.store, node_id="n", origin="alpha.example", phase=lambda: "consensus")


def test_receipts_come_from_memory_then_from_storage(node):
    create = node.alice.env("/points/create", {"point": "attic"})
    (receipt,) = node.apply_block([create.to_wire()])
    assert receipt["ok"] is True
    in_memory = node.view.lookup_receipt(create.action_id)
    assert in_memory["ok"] is True and in_memory["block"] == 3 and in_memory["position"] == 0
    stored = fresh_view(node).lookup_receipt(create.action_id)
    assert stored == {"action_id": create.action_id.hex(), "block": 3, "position": 0, "ok": True, "reason": None,
                      "result": {"point": "attic", "role": "owner"}}
    assert fresh_view(node).lookup_receipt(b"\x01" * 32) is None


def test_a_replay_in_the_same_block_never_hides_the_executed_receipt(node):
    env = node.alice.env("/points/create", {"point": "twice"})
    receipts = node.apply_block([env.to_wire(), env.to_wire()])
    assert [r["ok"] for r in receipts] == [True, False] and receipts[1]["reason"] == "replayed_nonce"
    assert node.view.lookup_receipt(env.action_id)["ok"] is True


def test_point_members_follow_the_state(node):
    assert sorted(node.view.point_members("lobby")) == sorted([node.alice.id, node.bob.id])
    assert node.view.point_members("nowhere") == []


async def test_waiters_share_one_event_and_a_timeout_does_not_strand_the_others(node):
    view = node.view
    env = node.bob.env("/points/create", {"point": "later"})
    got = []

    async def patient() -> None:
        got.append(await view.wait_receipt(env.action_id))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(patient)
        with trio.move_on_after(0.01):
            await view.wait_receipt(env.action_id)  # gives up first
        await trio.testing.wait_all_tasks_blocked()
        assert env.action_id in view._waiters and view._waiters[env.action_id].count == 1
        node.apply_block([env.to_wire()])
    assert got[0]["ok"] is True and got[0]["action_id"] == env.action_id.hex()
    assert view._waiters == {}


async def test_signal_queues_are_bounded():
    dropped = []
    hub = SignalHub(queue_per_member=3, max_queued_members=2, on_drop=dropped.append)
    for seq in range(5):
        hub.publish(["a"], {"seq": seq})
    assert hub.queued("a") == 3 and sum(dropped) == 2
    sub = hub.subscribe("a")
    assert [s["seq"] for s in sub.backlog] == [2, 3, 4] and hub.queued("a") == 0
    assert hub.publish(["a", "a"], {"seq": 5}) == 1  # a member listed twice gets it once
    assert sub.receiver.receive_nowait() == {"seq": 5}
    hub.unsubscribe(sub)
    assert hub.subscriber_count() == 0
    hub.publish(["b"], {"seq": 0})
    hub.publish(["c"], {"seq": 0})
    hub.publish(["d"], {"seq": 0})  # a third queued member evicts the one queued longest ago
    assert hub.queued("b") == 0 and hub.queued("c") == 1 and hub.queued("d") == 1
