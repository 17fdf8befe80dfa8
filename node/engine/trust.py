"""Where the engine's TLS identity comes from, in one of three modes chosen by the settings.

- `ca` (`ca_dir` set): this node holds the origin CA. It presents a certificate of its own CA
  (renewed by `CaService`), answers certificate requests behind the bootstrap gate, and is
  `ca-issued` from the start.
- `online` (`ca_node` + `ca_fingerprint` set): the node starts self-signed and asks the CA node for a
  certificate (`TrustManager`), keeps it renewed, and falls back to self-signed when it is revoked
  or expires.
- `offline`: today's homes written by `node testnet --offline-certs` or by hand: the certificate in
  the home is used as it is (`identity.load_identity`).

The engine learns of changes through two callbacks: `on_issued()` and `on_lost(reason)`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import random
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog
import trio

from node.config import Settings, split_host_port
from node.crypto import PrivateKey
from node.engine.identity import load_identity
from node.engine.paths import ca_certificate_path, issued_certificate_path
from node.errors import ConfigError
from node.fileutil import write_atomically
from node.transport import Endpoint, PinnedKeys, TlsIdentity
from node.transport.endpoint import Handler
from node.transport.mtls import IssuedByCA, PeerAuthenticator
from node.trust import CaDirectory, certificate_pem
from node.trust.bootstrap import bootstrap_gate, refuse_trust
from node.trust.chain_gate import ChainGate
from node.trust.chain_settings import cert_grace
from node.trust.manager import TrustManager
from node.trust.schedule import Backoff
from node.trust.service import CaService

log = structlog.get_logger("trust")

WAITING_REPORT_S = 10.0  # how often a node still waiting for its certificate says so
CA_RETRY_MAX_S = 5.0  # longest pause between certificate requests while the CA is unreachable
MAX_PENDING_RECORDS = 1000  # transparency records kept for the chain when nothing drains them


def trust_mode(settings: Settings) -> str:
    if settings.ca_dir is not None:
        return "ca"
    if settings.ca_node is not None:
        return "online"
    return "offline"


class EngineTrust:
    def __init__(
        self,
        *,
        settings: Settings,
        home_root: Path,
        key: PrivateKey,
        origin: str,
        members: frozenset[str],
        handler: Handler,
        on_issued: Callable[[], None],
        on_lost: Callable[[str], None],
        started: float | None = None,
    ) -> None:
        self.mode = trust_mode(settings)
        self.members = members  # node ids accepted as peers; changed by `set_members`
        self._offline_policy: PeerAuthenticator | None = None
        self._home = home_root
        self._key = key
        self._on_issued = on_issued
        self._on_lost = on_lost
        self._started = time.monotonic() if started is None else started  # for after_s in logs
        self.manager: TrustManager | None = None
        self.ca: CaService | None = None
        self.ca_directory: CaDirectory | None = None
        self._revocation_poll = settings.revocation_poll
        self.offline_issued = False
        # The chain's say on peers (revoked there / not recorded after the grace), around every policy.
        self.gate = ChainGate(cert_grace(settings))
        self.extra_status: Callable[[], dict[str, Any]] = dict  # the trust service's deadlines and transparency log
        bind = split_host_port(settings.listen)
        now = dt.datetime.now(dt.UTC)
        if self.mode == "offline":
            identity = load_identity(home_root, key, origin, members, now)
            self.offline_issued = identity.ca_issued
            self._offline_policy = identity.authenticator
            self.endpoint = Endpoint(
                bind=bind, identity=identity.identity, authenticator=self.gate.wrap(identity.authenticator),
                handler=handler,
            )
        elif self.mode == "ca":
            assert settings.ca_dir is not None
            directory = self.ca_directory = CaDirectory(home_root / settings.ca_dir)  # an absolute one stays absolute
            authority = directory.authority(
                secrets.token_bytes, members=members, lifetime=dt.timedelta(seconds=settings.cert_lifetime)
            )
            if authority.origin != origin:
                raise ConfigError(f"the CA in {directory.path} serves {authority.origin}, not {origin}")
            self.ca = CaService(authority, members=members)
            self.ca.wrap_policy = self.gate.wrap
            self.endpoint = Endpoint(
                bind=bind,
                identity=self.ca.own_identity(key),
                authenticator=self.gate.wrap(self.ca.policy()),
                handler=bootstrap_gate(handler, self.ca.handler),
            )
            self.ca.attach(self.endpoint)
        else:
            self.endpoint, self.manager = self._online(settings, key, origin, members, bind, handler, now)

    def _online(
        self,
        settings: Settings,
        key: PrivateKey,
        origin: str,
        members: frozenset[str],
        bind: tuple[str, int],
        handler: Handler,
        now: dt.datetime,
    ) -> tuple[Endpoint, TrustManager]:
        assert settings.ca_node is not None
        ca_id, _, ca_address = settings.ca_node.partition("@")
        if settings.ca_fingerprint is None:
            raise ConfigError("ca_node is set but ca_fingerprint is not: the CA certificate must be pinned")
        if ca_id == key.fingerprint:
            raise ConfigError("ca_node names this node, but ca_dir (its CA directory) is not set")
        endpoint = Endpoint(
            bind=bind,
            identity=TlsIdentity.self_signed(key, origin, now),
            authenticator=PinnedKeys(frozenset(), origin),  # replaced by the manager's bootstrap policy below
            handler=bootstrap_gate(handler, refuse_trust),
        )
        # A token is single-use: only a node that never held a certificate sends it (later requests
        # are renewals, or come from a genesis member the CA knows by its key).
        cert_path = issued_certificate_path(self._home)
        first_time = not cert_path.exists() and not cert_path.with_suffix(".crt.revoked").exists()
        manager = TrustManager(
            endpoint=endpoint,
            key=key,
            origin=origin,
            ca_node_id=ca_id,
            ca_address=split_host_port(ca_address),
            ca_fingerprint=settings.ca_fingerprint,
            home=self._home,
            token=settings.bootstrap_token if first_time else None,
            members=members,
            revocation_poll=settings.revocation_poll,
            backoff=Backoff(maximum=CA_RETRY_MAX_S),
            renew_jitter=random.random,
            on_issued=lambda cert: self._issued("issued", cert.serial_number),
            on_renewed=lambda cert: log.info("certificate renewed", serial=f"{cert.serial_number:x}"),
            on_revoked=lambda: self._on_lost("revoked"),
            on_expired=lambda: self._on_lost("expired"),
        )
        manager.wrap_policy = self.gate.wrap
        endpoint.set_identity(manager.bootstrap_identity())
        endpoint.set_authenticator(self.gate.wrap(manager.bootstrap_policy()))
        return endpoint, manager

    def set_members(self, members: frozenset[str]) -> None:
        """Accept exactly these node ids as peers from now on (membership changes committed on the
        chain: a joiner becomes reachable, a removed member is refused at its next handshake)."""
        if members == self.members:
            return
        self.members = members
        policy: PeerAuthenticator | None
        if self._offline_policy is not None:
            current = self._offline_policy
            if isinstance(current, IssuedByCA):
                policy = dataclasses.replace(current, members=members)
            elif isinstance(current, PinnedKeys):
                policy = dataclasses.replace(current, allowed=members)
            else:
                policy = current
            self._offline_policy = policy
        elif self.ca is not None:
            policy = self.ca.set_members(members)
        elif self.manager is not None:
            policy = self.manager.set_members(members)
        else:
            policy = None
        if policy is not None:
            self.endpoint.set_authenticator(self.gate.wrap(policy))
        log.info("accepted peers changed", members=len(members))

    @property
    def ca_issued(self) -> bool:
        if self.manager is not None:
            return self.manager.decisions.issued
        return self.ca is not None or self.offline_issued

    def _issued(self, how: str, serial: int) -> None:
        log.info("CA certificate", how=how, serial=f"{serial:x}", after_s=round(time.monotonic() - self._started, 3))
        self._on_issued()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Start the mode's trust service; the endpoint must already be running."""
        async with trio.open_nursery() as nursery:
            if self.ca is not None:
                await nursery.start(self.ca.run, self._key)
                self._store_own()
                nursery.start_soon(self._keep_own_stored)
                nursery.start_soon(self._follow_revocation_file)
                self._issued("own CA", self.endpoint.identity.certificate.serial_number)
            elif self.manager is not None:
                await nursery.start(self.manager.run)
                nursery.start_soon(self._report_waiting, self.manager)
            elif self.offline_issued:
                self._issued("offline", self.endpoint.identity.certificate.serial_number)
            task_status.started()

    # -- the CA node keeps its current certificate in its home, like every other node ---------------

    def _store_own(self) -> None:
        assert self.ca is not None
        write_atomically(ca_certificate_path(self._home), certificate_pem(self.ca.authority.ca.certificate))
        write_atomically(issued_certificate_path(self._home), certificate_pem(self.endpoint.identity.certificate))
        del self.ca.authority.records[:-MAX_PENDING_RECORDS]  # the transparency service drains them
        del self.ca.authority.signed[:-MAX_PENDING_RECORDS]

    async def _keep_own_stored(self) -> None:
        serial = self.endpoint.identity.certificate.serial_number
        while True:
            await trio.sleep(1.0)
            current = self.endpoint.identity.certificate.serial_number
            if current != serial:
                serial = current
                await trio.to_thread.run_sync(self._store_own)
                log.info("own certificate renewed", serial=f"{serial:x}")

    # -- revocations made offline (`node certs revoke --ca HOME/ca ...`) while the CA node runs ---------

    def _revocation_file_state(self) -> tuple[int, int] | None:
        assert self.ca_directory is not None
        try:
            stat = self.ca_directory.revoked_file.stat()
        except OSError:
            return None
        return stat.st_mtime_ns, stat.st_size

    async def _follow_revocation_file(self) -> None:
        """Apply what an operator adds to revoked.json: drop those peers now, and tell every node
        (they fetch the list from us). The file is also rewritten by us on every issuance, so an
        edit racing with an issuance can be lost: check `node certs show` after revoking."""
        assert self.ca is not None and self.ca_directory is not None
        ca, directory = self.ca, self.ca_directory
        seen = self._revocation_file_state()
        while True:
            await trio.sleep(min(self._revocation_poll, 1.0))
            state = self._revocation_file_state()
            if state == seen:
                continue
            seen = state
            try:
                listed = directory.load_revoked()
            except ConfigError as exc:
                log.warning("revocation list not read", error=str(exc))
                continue
            for node_id in sorted(listed.node_ids - ca.authority.revoked.node_ids):
                log.warning("node revoked", node=node_id)
                ca.revoke_node(node_id)
            for serial in sorted(listed.serials - ca.authority.revoked.serials):
                if serial in ca.authority.issued:
                    log.warning("certificate revoked", serial=f"{serial:x}", node=ca.authority.issued[serial].node_id)
                    ca.revoke_serial(serial)
            seen = self._revocation_file_state()  # our own save just rewrote it

    # -- a node waiting for its certificate says so ----------------------------------------------------

    async def _report_waiting(self, manager: TrustManager) -> None:
        reported_at: float | None = None
        while True:
            await trio.sleep(1.0)
            if manager.decisions.issued:
                reported_at = None
                continue
            if manager.last_error is None:
                continue
            now = trio.current_time()
            if reported_at is None or now - reported_at >= WAITING_REPORT_S:
                reported_at = now
                log.warning(
                    "still self-signed: no CA certificate yet", ca=manager.ca_node_id, attempts=manager.attempts,
                    error=manager.last_error, after_s=round(time.monotonic() - self._started, 3),
                )

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mode": self.mode, "ca_issued": self.ca_issued, "chain_refusals": self.gate.refusals}
        if self.manager is not None:
            out.update(attempts=self.manager.attempts, last_error=self.manager.last_error)
            credential = self.manager.decisions.credential
            if credential is not None:
                out.update(serial=f"{credential.serial:x}", renew_at=credential.renew_at.isoformat())
        out.update(self.extra_status())
        return out
