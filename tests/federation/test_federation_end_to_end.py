"""Two origins on loopback: each publishes itself by DNS, resolves the other, accepts it by its CA pin,
and a request travels alpha -> beta over QUIC and its agreed response comes back to alpha's tracker."""

import datetime as dt
import socket

import pytest
import trio

from node.actions.envelope import Envelope
from node.consensus.blocks import Block
from node.consensus.peers import PeerSet
from node.crypto import PrivateKey
from node.federation.directory import OriginDirectory
from node.federation.errors import FederationUsageError, OriginUnreachable
from node.federation.messages import FederatedRequest, FederatedResponse, RemoteReceipt, decode_message
from node.federation.proofs import BlockProof
from node.federation.records import ca_pin, origin_records
from node.federation.resolver import OriginResolver
from node.federation.responder import DnsResponder
from node.federation.tracker import NS, Admission, IncomingRequests, RequestTracker
from node.transport import Endpoint, IssuedByCA, Limits, PeerRefused, TlsIdentity
from node.trust import OriginCA, make_csr

from .conftest import FakeClock, utc_now

ALPHA, BETA = "alpha.example", "beta.example"
NOW = utc_now()
T0 = 1_800_000_000 * NS
FAST = Limits(request_timeout=5.0, handshake_timeout=1.5, redial_backoff_min=0.05, redial_backoff_max=0.2)


class Origin:
    """One origin: its CA, consensus members (block signers), one QUIC node and its DNS responder."""

    def __init__(self, name: str, handler):
        self.name = name
        self.ca = OriginCA.generate(name, NOW - dt.timedelta(days=1))
        self.members = [PrivateKey.from_seed(f"{name}-signer-{i}".encode()) for i in range(4)]
        self.peers = PeerSet.of(k.public for k in self.members)
        key = PrivateKey.from_seed(f"{name}-tls".encode())
        cert = self.ca.issue(make_csr(key, name), NOW, dt.timedelta(hours=24))
        self.identity = TlsIdentity(cert, key.to_cryptography(), (self.ca.certificate,))
        self.policy = IssuedByCA(self.ca.certificate, name)
        self.endpoint = Endpoint(
            bind=("127.0.0.1", 0), identity=self.identity, authenticator=self.policy, handler=handler, limits=FAST
        )
        self.nodes: list[tuple[str, str, int]] = []  # what the zone publishes (filled once bound)
        self.responder = DnsResponder(("127.0.0.1", 0), lambda: origin_records(name, self.nodes, [self.ca.certificate]))

    def block(self, transactions, index=3, timestamp=T0):
        block = Block(index, 7, timestamp, tuple(transactions), (), self.peers.hash, b"\1" * 32)
        return BlockProof(block, tuple(block.sign(k) for k in self.members[:3]))


def dead_node() -> tuple[str, str, int]:
    """A published node nobody runs: a real node id at a loopback port with no listener."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return (PrivateKey.from_seed(b"dead-beta-node").fingerprint, "127.0.0.1", port)


async def test_request_and_agreed_response_across_origins():
    served: list[Admission] = []

    async def beta_handler(peer, payload):
        request = decode_message(payload)
        assert isinstance(request, FederatedRequest)
        state, previous = incoming.admit(request, T0 + NS, sender_origin=peer.origin)
        served.append(state)
        if state is Admission.ANSWERED:
            return previous.to_wire()
        # Stands in for beta's chain: order the envelope in a block its members sign, execute it.
        response = FederatedResponse(
            request.request_id, BETA, RemoteReceipt(True, None, {"joined": True}),
            beta.block([request.envelope_wire], timestamp=T0 + 2 * NS),
        )
        incoming.complete(response, T0 + 2 * NS)
        return response.to_wire()

    async def alpha_handler(peer, payload):
        return b"alpha does not serve requests in this test"

    alpha, beta = Origin(ALPHA, alpha_handler), Origin(BETA, beta_handler)
    known = {ALPHA: [alpha.peers], BETA: [beta.peers]}
    incoming = IncomingRequests(BETA, lambda o: known.get(o, []))
    tracker = RequestTracker(lambda o: known.get(o, []))

    async with trio.open_nursery() as nursery:
        alpha_dns = await nursery.start(alpha.responder.run)
        beta_dns = await nursery.start(beta.responder.run)
        alpha_addr = await nursery.start(alpha.endpoint.run)
        beta_addr = await nursery.start(beta.endpoint.run)
        alpha.nodes = [(alpha.identity.node_id, *alpha_addr)]
        beta.nodes = [dead_node(), (beta.identity.node_id, *beta_addr)]

        # Each origin trusts the other's CA pin as configured (DNS alone is not validated).
        alpha_dir = OriginDirectory(
            OriginResolver([beta_dns], clock=FakeClock(), pins={BETA: [ca_pin(beta.ca.certificate)]}),
            alpha.policy, [BETA],
        )
        beta_dir = OriginDirectory(
            OriginResolver([alpha_dns], clock=FakeClock(), pins={ALPHA: [ca_pin(alpha.ca.certificate)]}),
            beta.policy, [ALPHA],
        )
        await nursery.start(alpha_dir.run, alpha.endpoint)
        await nursery.start(beta_dir.run, beta.endpoint)
        assert len(alpha_dir.known(BETA).endpoints) == 2

        user = PrivateKey.from_seed(b"e2e-user")
        envelope = Envelope.sign(user, origin=ALPHA, path="/points/join", args={}, nonce=1,
                                 expiry_ns=T0 + 3600 * NS, target=BETA)
        request = FederatedRequest.of(envelope, alpha.block([envelope.to_wire()]))
        assert tracker.start(request, T0)

        with trio.fail_after(20):
            first = await alpha_dir.send(alpha.endpoint, BETA, request.to_wire())
            # Sent again (a retry after a lost answer): the next send starts at the other node, so one
            # of the two sends went through the dead node first and failed over.
            second = await alpha_dir.send(alpha.endpoint, BETA, request.to_wire())
        assert first == second  # answered identically from beta's record
        assert served == [Admission.NEW, Admission.ANSWERED]

        response = decode_message(first)
        outcome = tracker.on_response(response, T0 + 3 * NS, sender_origin=BETA)
        assert outcome is not None and outcome.receipt.result == {"joined": True} and not outcome.timed_out
        assert tracker.on_response(response, T0 + 4 * NS) is None  # a duplicate changes nothing

        # Nobody else gets a beta identity past alpha: a beta certificate from another CA is refused.
        impostor_ca = OriginCA.generate(BETA, NOW - dt.timedelta(days=1))
        key = PrivateKey.from_seed(b"impostor")
        fake = TlsIdentity(impostor_ca.issue(make_csr(key, BETA), NOW), key.to_cryptography(),
                           (impostor_ca.certificate,))
        impostor = Endpoint(bind=("127.0.0.1", 0), identity=fake, authenticator=beta.policy, handler=beta_handler,
                            limits=FAST)
        await nursery.start(impostor.run)
        with trio.fail_after(10), pytest.raises(PeerRefused):
            await impostor.request(alpha.identity.node_id, alpha_addr, request.to_wire())
        nursery.cancel_scope.cancel()


async def test_send_fails_clearly():
    async def handler(peer, payload):
        return b""

    alpha = Origin(ALPHA, handler)
    directory = OriginDirectory(OriginResolver([], clock=FakeClock()), alpha.policy, [BETA])
    async with trio.open_nursery() as nursery:
        await nursery.start(alpha.endpoint.run)
        failures = await directory.refresh()
        assert set(failures) == {BETA}
        with pytest.raises(OriginUnreachable, match="not resolved yet"):
            await directory.send(alpha.endpoint, BETA, b"x")
        with pytest.raises(FederationUsageError):
            await directory.send(alpha.endpoint, "gamma.example", b"x")
        # Resolved (statically) to a node that does not run: unreachable, with the node named.
        node = dead_node()
        static = origin_records(BETA, [node], [alpha.ca.certificate])
        directory.resolver.static[BETA] = static
        await directory.refresh()
        with trio.fail_after(10), pytest.raises(OriginUnreachable, match=node[0]):
            await directory.send(alpha.endpoint, BETA, b"x")
        nursery.cancel_scope.cancel()


async def test_directory_refreshes_on_its_interval(autojump_clock):
    async def handler(peer, payload):
        return b""

    alpha = Origin(ALPHA, handler)
    beta_ca = OriginCA.generate(BETA, NOW - dt.timedelta(days=1))
    resolver = OriginResolver([], clock=trio.current_time, static={
        BETA: origin_records(BETA, [dead_node()], [beta_ca.certificate], ttl=10),
    })
    directory = OriginDirectory(resolver, alpha.policy, [BETA])
    seen = []
    async with trio.open_nursery() as nursery:
        await nursery.start(lambda task_status: directory.run(interval=30, on_refresh=lambda d: seen.append(
            d.pinned_policy().pins.get(BETA)), task_status=task_status))
        assert seen == [frozenset({ca_pin(beta_ca.certificate)})]
        # The CA of beta rolls over in the static map; the next refresh (30 s later) picks it up.
        rolled = OriginCA.generate(BETA, NOW - dt.timedelta(days=1))
        resolver.static[BETA] = origin_records(BETA, [dead_node()], [rolled.certificate], ttl=10)
        await trio.sleep(29)
        assert len(seen) == 1
        await trio.sleep(2)
        assert seen[-1] == frozenset({ca_pin(rolled.certificate)})
        nursery.cancel_scope.cancel()
