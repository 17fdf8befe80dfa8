"""The peer-set history read back from a real chain store (what `/history` answers), and the
schedule the follower keeps in the store's peer-set space."""

from pathlib import Path

from node import codec
from node.actions import Envelope
from node.consensus.blocks import Block
from node.consensus.event import Event
from node.consensus.peers import PeerSet
from node.crypto import PrivateKey
from node.engine.apply import BlockApplier
from node.membership.plugin import round_of_block
from node.membership.state import EVICT_PATH, REMOVE_PATH, fork_proofs, is_evicted, peer_set_history
from node.storage.chain import ChainStore

ORIGIN = "alpha.example"
T0 = 1_700_000_000 * 10**9
KEYS = [PrivateKey.from_seed(f"store-node-{i}".encode()) for i in range(4)]


def test_history_from_a_chain_store(tmp_path: Path) -> None:
    genesis = PeerSet.of(k.public for k in KEYS)
    leave = Envelope.sign(KEYS[1], origin=ORIGIN, path=REMOVE_PATH, args={"peer": KEYS[1].public.hex()}, nonce=1,
                          expiry_ns=T0 + 10**15).to_wire()
    with ChainStore.open(tmp_path / "chain") as chain:
        applier = BlockApplier(chain, ORIGIN)
        first = Block(0, 3, T0, (b"junk",), (), genesis.hash)
        second = Block(1, 9, T0 + 1, (leave,), (), genesis.hash)
        assert applier.apply(first, genesis.members) is not None
        applied = applier.apply(second, genesis.members)
        assert applied is not None and applied.result.receipts[0].ok, applied.result.receipts
        find = round_of_block(chain)
        assert find(1) == 9 and find(7) is None
        history = peer_set_history(chain.state, genesis, find)
        assert [h.to_obj()["effective_round"] for h in history] == [0, 15]
        assert history[1].to_obj()["count"] == 3 and history[1].peer == KEYS[1].public
        # What the follower writes for `/validators/{round}` when the API has no graph.
        chain.put_peer_set(15, codec.pack(list(history[1].members.members)))
        found = chain.peer_set_for(20)
        assert found is not None and found[0] == 15 and len(codec.unpack(found[1])) == 3


def test_fork_proofs_listed_from_the_store(tmp_path: Path) -> None:
    genesis = PeerSet.of(k.public for k in KEYS)
    twins = [Event.create(KEYS[2], index=0, self_parent=None, other_parent=None, timestamp=T0 + i) for i in range(2)]
    evict = Envelope.sign(KEYS[0], origin=ORIGIN, path=EVICT_PATH,
                          args={"a": twins[0].to_wire().hex(), "b": twins[1].to_wire().hex()}, nonce=1,
                          expiry_ns=T0 + 10**15).to_wire()
    with ChainStore.open(tmp_path / "chain") as chain:
        applied = BlockApplier(chain, ORIGIN).apply(Block(0, 4, T0, (evict,), (), genesis.hash), genesis.members)
        assert applied is not None and applied.result.receipts[0].ok
        (proof,) = fork_proofs(chain.state)
        assert proof["creator"] == KEYS[2].public.hex() and proof["block"] == 0
        assert is_evicted(chain.state, KEYS[2].fingerprint) and not is_evicted(chain.state, KEYS[0].fingerprint)
