"""The origins we federate with: resolved, pinned, and dialled with failover (a thin Trio shell).

TLS checks a peer inside the handshake, synchronously, before any request says who it is; so the
pins of every origin that may connect to us must be known ahead. `OriginDirectory` resolves a
configured list of origins, keeps each one's last good answer when a refresh fails, and builds
the transport policy: our own origin's policy, or a node of a known origin under its pinned CA key.
The daemon runs it as a service (`run`) which installs the policy on the endpoint after every
refresh; `send(origin, payload)` carries a request to one of the origin's nodes, trying the next
one when a node is unreachable or refused.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

import trio

from node.federation.errors import FederationUsageError, OriginUnreachable, ResolutionError
from node.federation.pinning import PinnedOrigins
from node.federation.resolver import OriginResolver, ResolvedOrigin
from node.transport.endpoint import Endpoint
from node.transport.errors import PeerRefused, PeerUnreachable, RemoteError
from node.transport.mtls import AnyOf, PeerAuthenticator
from node.trust.verify import RevocationSet

log = logging.getLogger(__name__)

DEFAULT_REFRESH_SECONDS = 30.0


class OriginDirectory:
    def __init__(
        self,
        resolver: OriginResolver,
        own_policy: PeerAuthenticator,
        origins: Iterable[str],
        *,
        revoked: RevocationSet = RevocationSet(),
    ) -> None:
        self.resolver = resolver
        self.own_policy = own_policy
        self.origins = tuple(sorted(set(origins)))
        self.revoked = revoked
        self._known: dict[str, ResolvedOrigin] = {}
        self._next: dict[str, int] = {}  # where the next send starts, so load spreads over nodes

    def known(self, origin: str) -> ResolvedOrigin | None:
        return self._known.get(origin)

    async def refresh(self) -> dict[str, ResolutionError]:
        """Resolve every origin; keep the previous answer of one that fails. Returns the failures."""
        failures: dict[str, ResolutionError] = {}
        for origin in self.origins:
            try:
                self._known[origin] = await self.resolver.resolve(origin)
            except ResolutionError as exc:
                failures[origin] = exc
                log.warning("%s", exc)
        return failures

    def pinned_policy(self) -> PinnedOrigins:
        """Nodes of the known origins, each by its pinned CA key (without our own origin's policy)."""
        pins = {origin: found.ca_pins for origin, found in self._known.items() if found.ca_pins}
        return PinnedOrigins(pins, self.revoked)

    def authenticator(self) -> PeerAuthenticator:
        """Our own policy, or a node of a known origin by its pinned CA key."""
        return AnyOf((self.own_policy, self.pinned_policy()))

    async def send(self, endpoint: Endpoint, origin: str, payload: bytes) -> bytes:
        """Send `payload` to some node of `origin` and return its answer; try each node once."""
        found = self._known.get(origin)
        if found is None:
            if origin not in self.origins:
                raise FederationUsageError(f"{origin!r} is not an origin we federate with")
            raise OriginUnreachable(origin, ["not resolved yet"])
        nodes = found.endpoints
        start = self._next.get(origin, 0) % len(nodes)
        reasons: list[str] = []
        for step in range(len(nodes)):
            node = nodes[(start + step) % len(nodes)]
            try:
                answer = await endpoint.request(node.node_id, node.address, payload)
            except (PeerUnreachable, PeerRefused) as exc:
                reasons.append(f"{node.node_id}@{node.host}:{node.port}: {type(exc).__name__}: {exc}")
                continue
            except RemoteError as exc:  # it answered: its handler failed; another node may not
                reasons.append(f"{node.node_id}: remote error: {exc.reason}")
                continue
            self._next[origin] = (start + step + 1) % len(nodes)
            return answer
        self.resolver.forget(origin)  # every node failed: ask DNS again at the next refresh
        raise OriginUnreachable(origin, reasons)

    async def run(
        self,
        endpoint: Endpoint | None = None,
        *,
        interval: float = DEFAULT_REFRESH_SECONDS,
        on_refresh: Callable[[OriginDirectory], None] | None = None,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Refresh every `interval` seconds; after each refresh install `authenticator()` on `endpoint`
        (when given) and call `on_refresh` (for an owner that composes the endpoint's policy itself)."""
        while True:
            await self.refresh()
            if endpoint is not None:
                endpoint.set_authenticator(self.authenticator())
            if on_refresh is not None:
                on_refresh(self)
            task_status.started()
            task_status = trio.TASK_STATUS_IGNORED
            await trio.sleep(interval)
