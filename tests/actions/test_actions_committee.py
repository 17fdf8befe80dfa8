"""The executor committee kept in state: drawn from a block's election seed, penalties lower weights."""

from __future__ import annotations

from node.actions import BlockContext, Envelope, ExecutorRequestOutput, execute_block, run_as_executor
from node.actions.committee import REPUTATION_KEY, current_committee
from node.actions.executors import sign_response
from node.actions.model import ExecutorOutcomeOutput, ReputationPenalty
from node.actions.state import Overlay
from node.consensus.election import MAX_REPUTATION, PENALTIES, Reputation, elect
from node.crypto import PrivateKey

ORIGIN = "alpha.example"
T0 = 1_700_000_000 * 10**9
S = 10**9
NODES = [PrivateKey.from_seed(f"node-{i}".encode()) for i in range(4)]
MEMBERS = tuple(sorted(k.public for k in NODES))
ALICE = PrivateKey.from_seed(b"alice")


class Chain:
    def __init__(self) -> None:
        self.state: dict[bytes, bytes] = {}
        self.index = 0

    def run(self, txs: list[bytes], election: tuple[int, bytes] | None = None, count: int | None = None):
        ctx = BlockContext(self.index, T0 + self.index * S, ORIGIN, members=MEMBERS, election=election,
                           executor_count=count, executor_timeout_ns=5 * S)
        result = execute_block(self.state, txs, ctx)
        result.apply_to(self.state)
        self.index += 1
        return result

    def committee(self) -> tuple[bytes, ...]:
        return current_committee(Overlay(self.state))


def alice(path: str, args: dict, nonce: int) -> bytes:
    return Envelope.sign(ALICE, origin=ORIGIN, path=path, args=args, nonce=nonce, expiry_ns=T0 + 3600 * S).to_wire()


def test_election_seed_in_a_block_draws_the_committee_every_node_derives() -> None:
    a, b = Chain(), Chain()
    seed = b"s" * 32
    for chain in (a, b):
        chain.run([], election=(10, seed), count=2)
    assert a.committee() == b.committee() == elect(list(MEMBERS), seed, Reputation(), 2)
    assert len(a.committee()) == 2
    assert a.state == b.state
    # A block without a seed keeps the committee.
    before = a.committee()
    a.run([])
    assert a.committee() == before
    # Other seeds draw other committees (over 20 seeds, more than one distinct committee).
    committees = set()
    for i in range(20):
        chain = Chain()
        chain.run([], election=(20, bytes([i]) * 32), count=2)
        committees.add(chain.committee())
    assert len(committees) > 1


def test_no_election_no_committee_and_executor_actions_are_refused() -> None:
    chain = Chain()
    chain.run([alice("/users/create", {"name": "alice"}, 1)])
    chain.run([alice("/points/create", {"point": "p"}, 2)])
    receipt = chain.run([alice("/points/attest", {"point": "p"}, 3)]).receipts[0]
    assert not receipt.ok and receipt.reason.value == "no_executors"


def _request(chain: Chain, count: int | None = None) -> ExecutorRequestOutput:
    chain.run([alice("/users/create", {"name": "alice"}, 1)], election=(10, b"x" * 32), count=count)
    chain.run([alice("/points/create", {"point": "p"}, 2)])
    result = chain.run([alice("/points/attest", {"point": "p"}, 3)])
    assert result.receipts[0].ok, result.receipts[0]
    (request,) = [o for o in result.outputs if isinstance(o, ExecutorRequestOutput)]
    assert request.committee == chain.committee() and len(request.committee) == (count or 3)  # default SM(4)
    return request


def _respond(chain: Chain, request: ExecutorRequestOutput, key: PrivateKey, nonce: int, lie: bool = False) -> bytes:
    ctx = BlockContext(chain.index, T0 + chain.index * S, ORIGIN, committee=request.committee, members=MEMBERS)
    response = run_as_executor(request.envelope, chain.state, ctx, key.public)
    if lie:
        response = type(response)(response.request_id, response.executor, {"forged": True}, response.effects_hash)
    return sign_response(key, response, origin=ORIGIN, nonce=nonce, expiry_ns=T0 + 3600 * S).to_wire()


def test_attestation_completes_when_the_committee_agrees_and_a_liar_loses_reputation() -> None:
    chain = Chain()
    request = _request(chain, count=4)  # a committee of 4 outvotes one liar (3 = SM(4) agree)
    by_key = {k.public: k for k in NODES}
    liar, *honest = [by_key[m] for m in request.committee]
    txs = [_respond(chain, request, k, 1) for k in honest] + [_respond(chain, request, liar, 1, lie=True)]
    result = chain.run(txs)
    (outcome,) = [o for o in result.outputs if isinstance(o, ExecutorOutcomeOutput)]
    assert outcome.ok and outcome.result == {"point": "p", "owner": ALICE.fingerprint, "open": True, "since": 1}
    assert [o for o in result.outputs if isinstance(o, ReputationPenalty)] == [
        ReputationPenalty(liar.public, request.request_id, "disagreed")
    ]
    reputation = Reputation.from_obj(Overlay(chain.state).get_obj(REPUTATION_KEY))
    assert reputation.weight(liar.public) == MAX_REPUTATION - PENALTIES["disagreed"]
    assert all(reputation.weight(k.public) == MAX_REPUTATION for k in honest)
    # The next election recovers a little of the weight, and every node would compute the same.
    chain.run([], election=(20, b"y" * 32))
    reputation = Reputation.from_obj(Overlay(chain.state).get_obj(REPUTATION_KEY))
    assert reputation.weight(liar.public) == MAX_REPUTATION - PENALTIES["disagreed"] + 2


def test_response_from_a_node_outside_the_committee_is_refused() -> None:
    chain = Chain()
    request = _request(chain)
    outsider = next(k for k in NODES if k.public not in request.committee)
    ctx = BlockContext(chain.index, T0, ORIGIN, committee=request.committee, members=MEMBERS)
    response = run_as_executor(request.envelope, chain.state, ctx, outsider.public)
    tx = sign_response(outsider, response, origin=ORIGIN, nonce=1, expiry_ns=T0 + 3600 * S).to_wire()
    receipt = chain.run([tx]).receipts[0]
    assert not receipt.ok and receipt.reason.value == "not_executor"


def test_default_committee_of_three_with_one_liar_fails_with_a_clear_receipt() -> None:
    chain = Chain()
    request = _request(chain)  # SM(4) = 3 executors, all three must agree
    by_key = {k.public: k for k in NODES}
    liar, *honest = [by_key[m] for m in request.committee]
    txs = [_respond(chain, request, k, 1) for k in honest] + [_respond(chain, request, liar, 1, lie=True)]
    result = chain.run(txs)
    (outcome,) = [o for o in result.outputs if isinstance(o, ExecutorOutcomeOutput)]
    assert not outcome.ok and outcome.reason.value == "executors_disagree" and outcome.agreeing == 2
