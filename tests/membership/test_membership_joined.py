"""A joiner's start: the peer-set history `node join` keeps in the home, scheduled before any event;
the transport's accepted peers following committed changes (`EngineTrust.set_members`)."""

import datetime as dt
import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from node.config import Settings
from node.consensus.hashgraph import Hashgraph
from node.consensus.peers import PeerSchedule, PeerSet
from node.crypto import PrivateKey
from node.engine.paths import ca_certificate_path, issued_certificate_path
from node.engine.trust import EngineTrust
from node.errors import ConfigError
from node.membership.joined import joined_peer_addresses, load_joined, write_joined
from node.membership.plugin import accepted_members
from node.trust import OriginCA, certificate_pem, make_csr
from node.trust.errors import CertificateRefused

ORIGIN = "alpha.example"
NOW = dt.datetime.now(dt.UTC)
KEYS = [PrivateKey.from_seed(f"joined-{i}".encode()) for i in range(6)]
GENESIS = PeerSet.of(k.public for k in KEYS[:4])


def _rows() -> list[dict]:
    five = PeerSet.of(k.public for k in KEYS[:5])
    six = PeerSet.of(k.public for k in KEYS[:6])

    def row(rnd: int, peers: PeerSet, change: str, peer: PrivateKey | None, address: str | None) -> dict:
        return {"effective_round": rnd, "members": [m.hex() for m in peers.members], "change": change,
                "peer": peer.public.hex() if peer else None, "address": address, "count": len(peers)}

    return [row(0, GENESIS, "genesis", None, None), row(12, five, "join", KEYS[4], "127.0.0.1:7004"),
            row(20, six, "join", KEYS[5], "127.0.0.1:7005")]


def test_history_round_trip_schedules_every_set_before_events(tmp_path: Path) -> None:
    write_joined(tmp_path, ORIGIN, _rows())
    joined = load_joined(tmp_path)
    assert joined is not None and joined.origin == ORIGIN
    assert KEYS[5].public in joined.latest()
    assert joined.node_ids() == {k.fingerprint for k in KEYS}
    graph = Hashgraph(PeerSchedule(GENESIS))
    assert joined.apply(graph) == 2
    assert [(r, len(p)) for r, p in graph.peers.effective_rounds()] == [(0, 4), (12, 5), (20, 6)]
    assert graph.peers.at(11) == GENESIS and len(graph.peers.at(19)) == 5
    # Gossip addresses: joined members only, never ourselves or a genesis member.
    peers = joined_peer_addresses(joined, set(GENESIS.members), KEYS[5].public)
    assert [(p.node_id, p.host, p.port) for p in peers] == [(KEYS[4].fingerprint, "127.0.0.1", 7004)]
    assert load_joined(tmp_path / "elsewhere") is None


@pytest.mark.parametrize("bad", [
    {"origin": ORIGIN},
    {"origin": ORIGIN, "history": [{"effective_round": 3}]},
    {"origin": ORIGIN, "history": [{"effective_round": -1, "members": [KEYS[0].public.hex()]}]},
])
def test_a_bad_history_file_is_refused(tmp_path: Path, bad: dict) -> None:
    (tmp_path / "membership.json").write_text(json.dumps(bad))
    with pytest.raises(ConfigError):
        load_joined(tmp_path)


def test_rows_out_of_order_are_refused_when_written(tmp_path: Path) -> None:
    rows = _rows()
    with pytest.raises(ConfigError, match="order"):
        write_joined(tmp_path, ORIGIN, [rows[0], rows[2], rows[1]])


def test_accepted_members_are_the_current_set_and_every_later_one() -> None:
    graph = Hashgraph(PeerSchedule(GENESIS))
    graph.set_peer_set(12, PeerSet.of(k.public for k in KEYS[:5]))
    graph.set_peer_set(20, PeerSet.of(k.public for k in KEYS[1:5]))  # KEYS[0] leaves
    engine = SimpleNamespace(graph=graph)
    # At round 0: the genesis set, the joiner (to catch up) and the set after the leave.
    assert accepted_members(engine) == {k.fingerprint for k in KEYS[:5]}


def _trust(tmp_path: Path, key: PrivateKey, members: frozenset[str]) -> EngineTrust:
    settings = Settings(home=tmp_path, listen="127.0.0.1:0")

    async def handler(peer, payload):  # never called: nothing connects
        return b""

    return EngineTrust(settings=settings, home_root=tmp_path, key=key, origin=ORIGIN, members=members,
                       handler=handler, on_issued=lambda: None, on_lost=lambda reason: None)


def _authenticate(trust: EngineTrust, cert) -> str:
    return trust.endpoint._authenticator.authenticate(cert, (), NOW).node_id


def test_set_members_lets_a_joined_node_in_and_keeps_a_removed_one_out(tmp_path: Path) -> None:
    ca = OriginCA.generate(ORIGIN, NOW - dt.timedelta(days=1))
    issued = {k.fingerprint: ca.issue(make_csr(k, ORIGIN), NOW - dt.timedelta(minutes=1)) for k in KEYS}
    own = KEYS[0]
    issued_certificate_path(tmp_path).parent.mkdir(parents=True, exist_ok=True)
    issued_certificate_path(tmp_path).write_bytes(certificate_pem(issued[own.fingerprint]))
    ca_certificate_path(tmp_path).parent.mkdir(parents=True, exist_ok=True)
    ca_certificate_path(tmp_path).write_bytes(ca.certificate_pem())
    genesis = frozenset(k.fingerprint for k in KEYS[:4])
    trust = _trust(tmp_path, own, genesis)
    assert trust.ca_issued
    joiner = KEYS[4].fingerprint
    with pytest.raises(CertificateRefused):
        _authenticate(trust, issued[joiner])
    trust.set_members(genesis | {joiner})
    assert _authenticate(trust, issued[joiner]) == joiner
    trust.set_members((genesis | {joiner}) - {KEYS[3].fingerprint})  # a removal in force
    with pytest.raises(CertificateRefused):
        _authenticate(trust, issued[KEYS[3].fingerprint])
    assert _authenticate(trust, issued[KEYS[1].fingerprint]) == KEYS[1].fingerprint


def test_set_members_on_a_self_signed_home_pins_the_new_keys(tmp_path: Path) -> None:
    from node.transport.mtls import TlsIdentity

    genesis = frozenset(k.fingerprint for k in KEYS[:4])
    trust = _trust(tmp_path, KEYS[0], genesis)
    cert = TlsIdentity.self_signed(KEYS[4], ORIGIN, NOW).certificate
    with pytest.raises(CertificateRefused):
        _authenticate(trust, cert)
    trust.set_members(genesis | {KEYS[4].fingerprint})
    assert _authenticate(trust, cert) == KEYS[4].fingerprint


def test_the_engine_accepts_a_joiner_home_only_with_its_committed_history(tmp_path: Path) -> None:
    from node.engine.genesis import Genesis, Member
    from node.engine.service import genesis_for

    config = tmp_path / "config"
    config.mkdir()
    genesis = Genesis(ORIGIN, tuple(Member(k.fingerprint, k.public, f"127.0.0.1:{7000 + i}")
                                    for i, k in enumerate(KEYS[:4])))
    (config / "genesis.json").write_text(genesis.to_json())
    joiner = KEYS[5]
    ctx = SimpleNamespace(home=SimpleNamespace(config_file=config / "node.toml"), key=joiner,
                          settings=SimpleNamespace(origin=ORIGIN, peers=(), listen="127.0.0.1:0"))
    with pytest.raises(ConfigError, match="node join"):
        genesis_for(ctx)
    write_joined(config, ORIGIN, _rows())
    assert genesis_for(ctx, load_joined(config)) == genesis
    write_joined(config, "beta.example", _rows())
    with pytest.raises(ConfigError, match="beta.example"):
        genesis_for(ctx, load_joined(config))
    write_joined(config, ORIGIN, _rows()[:2])  # a history where this key never joined
    with pytest.raises(ConfigError, match="not a member"):
        genesis_for(ctx, load_joined(config))
