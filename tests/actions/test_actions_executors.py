"""Executor requests: the committee's responses reconciled, disagreement, silence, penalties."""

from __future__ import annotations

import pytest

from node import codec
from node.actions import (
    BlockContext,
    ExecutorOutcomeOutput,
    ExecutorRequestOutput,
    ExecutorResponse,
    Reason,
    Registry,
    ReputationPenalty,
    ResponseTracker,
    register_builtins,
    run_as_executor,
)
from node.actions.errors import ActionRejected
from node.actions.executors import sign_response, supermajority
from node.actions.state import EXEC_PENDING_KEY, exec_request_key
from node.crypto import PrivateKey
from node.errors import UsageError

RID = b"r" * 32
E = [bytes([i]) * 32 for i in range(1, 6)]
FX = b"f" * 32


def resp(executor: bytes, result: object = "ok", effects: bytes = FX) -> ExecutorResponse:
    return ExecutorResponse(RID, executor, result, effects)


def test_supermajority() -> None:
    assert [supermajority(n) for n in (1, 2, 3, 4, 5, 6, 7)] == [1, 2, 3, 3, 4, 5, 5]


def test_all_agree_is_final_at_once() -> None:
    tracker = ResponseTracker(RID, tuple(E[:3]), deadline_ns=100)
    for e in E[:2]:
        tracker.receive(resp(e))
        assert tracker.decide(now_ns=0) is None  # waiting for the third
    tracker.receive(resp(E[2]))
    decision = tracker.decide(now_ns=0)
    assert decision is not None and decision.penalties == []
    assert decision.outcome == ExecutorOutcomeOutput(RID, True, "ok", FX, None, 3, 3)


def test_one_dissenter_of_four_is_outvoted_and_penalised() -> None:
    tracker = ResponseTracker(RID, tuple(E[:4]), deadline_ns=100)
    for e in E[:3]:
        tracker.receive(resp(e))
    tracker.receive(resp(E[3], result="different"))
    decision = tracker.decide(now_ns=0)
    assert decision.outcome.ok and decision.outcome.result == "ok" and decision.outcome.agreeing == 3
    assert decision.penalties == [ReputationPenalty(E[3], RID, "disagreed")]


def test_same_result_other_effects_is_a_disagreement() -> None:
    tracker = ResponseTracker(RID, tuple(E[:3]), deadline_ns=100)
    tracker.receive(resp(E[0]))
    tracker.receive(resp(E[1]))
    tracker.receive(resp(E[2], effects=b"g" * 32))
    decision = tracker.decide(now_ns=0)
    # 2 of 3 is not a supermajority: the request fails, and nobody can be blamed for sure.
    assert decision.outcome == ExecutorOutcomeOutput(RID, False, None, None, Reason.EXECUTORS_DISAGREE, 2, 3)
    assert decision.penalties == []


def test_silent_executor_after_deadline() -> None:
    tracker = ResponseTracker(RID, tuple(E[:4]), deadline_ns=100)
    for e in E[:3]:
        tracker.receive(resp(e))
    assert tracker.decide(now_ns=99) is None
    decision = tracker.decide(now_ns=100)
    assert decision.outcome.ok and decision.penalties == [ReputationPenalty(E[3], RID, "silent")]


def test_timeout_without_supermajority_fails() -> None:
    tracker = ResponseTracker(RID, tuple(E[:4]), deadline_ns=100)
    tracker.receive(resp(E[0]))
    tracker.receive(resp(E[1]))
    decision = tracker.decide(now_ns=500)
    assert decision.outcome.reason is Reason.EXECUTOR_TIMEOUT and not decision.outcome.ok
    assert decision.penalties == [ReputationPenalty(E[2], RID, "silent"), ReputationPenalty(E[3], RID, "silent")]


def test_equivocation_discards_votes_and_is_penalised() -> None:
    tracker = ResponseTracker(RID, tuple(E[:4]), deadline_ns=100)
    tracker.receive(resp(E[0]))
    tracker.receive(resp(E[0]))  # the same answer twice is harmless
    assert tracker.votes.keys() == {E[0]}
    tracker.receive(resp(E[0], result="other"))
    tracker.receive(resp(E[0]))
    for e in E[1:4]:
        tracker.receive(resp(e))
    decision = tracker.decide(now_ns=0)
    assert decision.outcome.ok and decision.outcome.agreeing == 3
    assert decision.penalties == [ReputationPenalty(E[0], RID, "equivocated")]


def test_outsider_refused_and_state_round_trip() -> None:
    tracker = ResponseTracker(RID, tuple(E[:3]), deadline_ns=100)
    with pytest.raises(ActionRejected) as info:
        tracker.receive(resp(E[4]))
    assert info.value.reason is Reason.NOT_EXECUTOR
    tracker.receive(resp(E[0]))
    back = ResponseTracker.from_state(codec.unpack(codec.pack(tracker.to_state())))
    assert back == tracker


# -- on the chain ----------------------------------------------------------------------------


def job_registry() -> Registry:
    registry = register_builtins(Registry())

    @registry.action("/jobs/run", executors=True)
    def run_job(ctx, args):
        """Run a job on the executor committee; args: n."""
        n = args.get("n")
        if not isinstance(n, int):
            raise ActionRejected(Reason.INVALID_ARGS, "n must be an integer")
        ctx.state.put_obj(b"job/" + ctx.actor.encode(), n)
        return {"square": n * n}

    return registry


@pytest.fixture
def job_chain(chain, make_actor):
    chain.registry = job_registry()
    alice = make_actor()
    assert chain.one(alice.tx("/users/create", {"name": "alice"})).ok
    nodes = [PrivateKey.from_seed(f"node-{i}".encode()) for i in range(4)]
    return chain, alice, nodes


def respond_txs(chain, request: ExecutorRequestOutput, nodes, *, tamper: dict[int, object] | None = None):
    txs = []
    for i, key in enumerate(nodes):
        ctx = BlockContext(chain.index - 1, chain.ts, chain.origin, request.committee)
        response = run_as_executor(request.envelope, chain.state, ctx, key.public, chain.registry)
        if tamper and i in tamper:
            response = ExecutorResponse(response.request_id, response.executor, tamper[i], response.effects_hash)
        txs.append(sign_response(key, response, origin=chain.origin, nonce=chain.index, expiry_ns=chain.ts + 10**12)
                   .to_wire())
    return txs


def test_executor_action_completes_when_committee_agrees(job_chain) -> None:
    chain, alice, nodes = job_chain
    committee = tuple(n.public for n in nodes)
    result = chain.run(alice.tx("/jobs/run", {"n": 7}), committee=committee)
    receipt = result.receipts[0]
    assert receipt.ok and receipt.result["status"] == "pending"
    (request,) = result.outputs
    assert isinstance(request, ExecutorRequestOutput) and set(request.committee) == set(committee)
    # Only the committee runs the handler: the chain itself did not apply its write.
    assert b"job/" + alice.id.encode() not in chain.state
    done = chain.run(*respond_txs(chain, request, nodes))
    assert all(r.ok for r in done.receipts), done.receipts
    assert [r.result["status"] for r in done.receipts] == ["pending"] * 3 + ["completed"]
    (outcome,) = done.outputs
    assert outcome.ok and outcome.result == {"square": 49} and outcome.agreeing == 4
    record = codec.unpack(chain.state[exec_request_key(request.request_id)])
    assert record["status"] == "completed" and record["result"] == {"square": 49}
    assert codec.unpack(chain.state[EXEC_PENDING_KEY]) == []
    # A late response to a closed request is refused.
    late = sign_response(nodes[0], run_as_executor(request.envelope, chain.state, BlockContext(0, 0, chain.origin),
                                                   nodes[0].public, chain.registry),
                         origin=chain.origin, nonce=10**6, expiry_ns=chain.ts + 10**12)
    assert chain.one(late.to_wire()).reason is Reason.REQUEST_CLOSED


def test_disagreeing_executor_is_penalised(job_chain) -> None:
    chain, alice, nodes = job_chain
    result = chain.run(alice.tx("/jobs/run", {"n": 3}), committee=tuple(n.public for n in nodes))
    (request,) = result.outputs
    done = chain.run(*respond_txs(chain, request, nodes, tamper={2: {"square": 10}}))
    outcome, penalty = done.outputs
    assert outcome.ok and outcome.result == {"square": 9} and outcome.agreeing == 3
    assert penalty == ReputationPenalty(nodes[2].public, request.request_id, "disagreed")


def test_silent_committee_times_out_in_consensus_time(job_chain) -> None:
    chain, alice, nodes = job_chain
    result = chain.run(alice.tx("/jobs/run", {"n": 3}), committee=tuple(n.public for n in nodes),
                       timeout_ns=5 * 10**9)
    (request,) = result.outputs
    responses = respond_txs(chain, request, nodes[:1])
    assert chain.run(*responses).outputs == []  # 1 of 4 so far, deadline not reached
    later = chain.run(ts=request.deadline_ns)  # an empty block at the deadline decides
    outcome, *penalties = later.outputs
    assert outcome.reason is Reason.EXECUTOR_TIMEOUT and not outcome.ok
    assert {p.executor for p in penalties} == {n.public for n in nodes[1:]}
    assert all(p.reason == "silent" for p in penalties)
    assert codec.unpack(chain.state[exec_request_key(request.request_id)])["status"] == "failed"


def test_executor_guards(job_chain) -> None:
    chain, alice, nodes = job_chain
    # No committee elected: the action fails, and nothing is recorded.
    assert chain.one(alice.tx("/jobs/run", {"n": 1})).reason is Reason.NO_EXECUTORS
    result = chain.run(alice.tx("/jobs/run", {"n": 1}), committee=(nodes[0].public,))
    (request,) = result.outputs
    outsider = PrivateKey.from_seed(b"outsider")
    response = ExecutorResponse(request.request_id, outsider.public, {"square": 1}, FX)
    tx = sign_response(outsider, response, origin=chain.origin, nonce=1, expiry_ns=chain.ts + 10**12).to_wire()
    assert chain.one(tx).reason is Reason.NOT_EXECUTOR
    with pytest.raises(UsageError):  # the signer must be the executor the response names
        sign_response(outsider, ExecutorResponse(RID, E[0], 1, FX), origin="o", nonce=1, expiry_ns=1)
    # The handler's own refusal is a result the committee agrees on.
    bad = chain.run(alice.tx("/jobs/run", {"n": "x"}), committee=(nodes[0].public,))
    (req2,) = bad.outputs
    done = chain.run(*respond_txs(chain, req2, nodes[:1]))
    assert done.outputs[0].ok and done.outputs[0].result == {"error": "invalid_args"}
