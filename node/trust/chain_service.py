"""The transparency log's Trio side on every node: put certificates and revocations on the chain,
serve the log at `GET /certificates`, and apply what the chain says to the node's peers.

Who records what:
- every node records its own current certificate (CA-issued online, the CA node's own, or an
  offline-issued home) when the chain does not hold it yet, and again after each renewal;
- the CA node also records every certificate it signs, and each revocation it makes, signed with
  the CA key (`node certs revoke` on its CA directory, or a revocation through its service).

What every node does with applied records (`ChainGate`): a revoked peer is cut off at once and
refused from then on; once this node runs consensus, a CA-issued peer whose certificate is still
not recorded `grace` later is cut off and refused (`_sweep`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import structlog
import trio
from cryptography import x509

from node.errors import InvalidInput
from node.runtime.phases import Phase
from node.transport.endpoint import utc_now
from node.trust.chain_gate import ChainGate
from node.trust.chain_state import (
    RECORD_PATH,
    REVOKE_PATH,
    anchor_of,
    chain_view,
    is_recorded,
    log_count,
    log_entries,
    record_args,
    revocations,
    revoke_args,
    serial_hex,
)
from node.trust.transparency import certificate_fingerprint
from node.trust.verify import RevocationSet

if TYPE_CHECKING:
    from node.engine.apply import AppliedBlock
    from node.engine.service import ConsensusEngine

log = structlog.get_logger("trust")

RESUBMIT_S = 60.0  # a record submitted but still not on the chain this long after is submitted again
OWN_RECORD_DELAY_S = 3.0  # the CA node records what it signs: others give it a head start
TICK_S = 0.5
REFUSALS_LOG_S = 10.0  # at most one "handshakes refused" line this often


class ChainRecorder:
    def __init__(self, engine: ConsensusEngine) -> None:
        assert engine.trust is not None and engine.chain is not None and engine.endpoint is not None
        self.engine = engine
        self.trust = engine.trust
        self.gate: ChainGate = engine.trust.gate
        self.chain = engine.chain
        self.endpoint = engine.endpoint
        self.next_seq = 0
        self.pending: dict[str, float] = {}  # serial (hex) or "revoke:<serial|node>" -> monotonic time submitted
        self.submitted = 0
        self.cut_off: list[tuple[str, str]] = []  # (node id, reason), for status and tests
        self._phase_since = time.monotonic()
        self._refusals_logged = (0, 0.0)  # (count, monotonic time) of the last "refused by the chain" line
        self.anchor: str | None = None  # the CA fingerprint the chain's log is anchored to, once read
        self.anchor_ok: bool | None = None

    # -- start ---------------------------------------------------------------------------------------

    def attach(self) -> None:
        """Serve the log through the API and follow applied blocks (call in the Trio thread, no await between)."""
        view = chain_view(self.chain.state)
        self.gate.add_recorded(view.recorded)
        self._learn_revoked(view.revoked)
        self.next_seq = log_count(self.chain.state)
        self.engine.block_listeners.append(self._block_applied)
        if self.engine.view is not None:
            self.engine.view.certificates_source = lambda: list(log_entries(self.chain.state))

    async def run(self) -> None:
        while True:
            try:
                self._tick()
            except InvalidInput as exc:  # e.g. our pool is full: try again on the next tick
                log.warning("transparency step failed", error=str(exc))
            except Exception as exc:  # never let the transparency log take the node down
                log.error("transparency step crashed", error=repr(exc))
            await trio.sleep(TICK_S)

    def _tick(self) -> None:
        phases = self.engine.ctx.phases
        if phases.phase is Phase.CONSENSUS or phases.phase is Phase.FEDERATED:
            self.gate.arm(utc_now())
        if not phases.at_least(Phase.CA_ISSUED):
            self._phase_since = time.monotonic()
            return
        self._sweep()
        self._check_anchor()
        if self.trust.ca is not None:
            self._record_signed()
            self._record_revocations()
        if time.monotonic() - self._phase_since >= (0 if self.trust.ca is not None else OWN_RECORD_DELAY_S):
            self._record_own()

    # -- applied blocks ------------------------------------------------------------------------------

    def _block_applied(self, applied: AppliedBlock) -> None:
        try:
            self._follow(applied)
        except Exception as exc:  # runs inside the engine's apply loop: never let it fail there
            log.error("transparency log not followed", block=applied.block.index, error=repr(exc))

    def _follow(self, applied: AppliedBlock) -> None:
        revoked: list[dict[str, Any]] = []
        for entry in log_entries(self.chain.state, self.next_seq):
            self.next_seq = int(entry["seq"]) + 1
            self.pending.pop(str(entry["serial"]), None)
            if entry["action"] == "revoked":
                self.pending.pop(f"revoke:{entry['serial'] or entry['node_id']}", None)
                revoked.append(entry)
            else:
                self.gate.add_recorded([int(entry["serial"], 16)])
                log.info("certificate on chain", node=entry["node_id"], serial=entry["serial"], action=entry["action"],
                         block=applied.block.index)
        if revoked:
            self._learn_revoked(revocations(self.chain.state), revoked)

    def _learn_revoked(self, revoked: RevocationSet, entries: Sequence[dict[str, Any]] = ()) -> None:
        for entry in entries:
            log.warning("revocation on chain", node=entry["node_id"], serial=entry["serial"] or "*",
                        reason=entry["reason"])
        to_cut = set(self.gate.add_revoked(revoked)) | set(revoked.node_ids)
        connected = {p.node_id for p in self.endpoint.peers()}
        for node_id in sorted(to_cut & connected):
            self._cut(node_id, "certificate revoked on the chain")
        owners = {int(e["serial"], 16): str(e["node_id"]) for e in entries if e["serial"]}
        if self.trust.manager is not None:
            self.trust.manager.apply_revocations(revoked, owners)  # also handles our own revocation
        elif self.trust.ca is not None:
            self._tell_ca(revoked)

    def _tell_ca(self, revoked: RevocationSet) -> None:
        """The CA node applies revocations made elsewhere (a node revoking itself) to what it issues."""
        assert self.trust.ca is not None
        ca = self.trust.ca
        for node_id in sorted(revoked.node_ids - ca.authority.revoked.node_ids):
            ca.revoke_node(node_id)
        for serial in sorted(revoked.serials - ca.authority.revoked.serials):
            if serial in ca.authority.issued:
                ca.revoke_serial(serial)

    def _cut(self, node_id: str, reason: str) -> None:
        if node_id == self.endpoint.node_id:
            return
        self.endpoint.disconnect(node_id, reason)
        self.engine.heard.pop(node_id, None)
        self.cut_off.append((node_id, reason))
        log.warning("peer cut off", node=node_id, reason=reason)

    def _sweep(self) -> None:
        connected = [p.node_id for p in self.endpoint.peers() if p.ca_issued]
        for node_id, reason in self.gate.overdue(connected, utc_now()).items():
            self._cut(node_id, reason)
        count, at = self._refusals_logged
        if self.gate.refusals > count and time.monotonic() - at >= REFUSALS_LOG_S:
            log.warning("handshakes refused by the chain's certificate log", total=self.gate.refusals,
                        since_last=self.gate.refusals - count)
            self._refusals_logged = (self.gate.refusals, time.monotonic())

    def _own_ca_fingerprint(self) -> str | None:
        if self.trust.ca is not None:
            return certificate_fingerprint(self.trust.ca.authority.ca.certificate)
        if self.trust.manager is not None:
            return self.trust.manager.decisions.ca_fingerprint
        chain = self.endpoint.identity.chain
        return certificate_fingerprint(chain[0]) if self.trust.ca_issued and chain else None

    def _check_anchor(self) -> None:
        """The log must be anchored to our own origin CA: say so loudly (once) when it is not."""
        if self.anchor is not None:
            return
        anchored = anchor_of(self.chain.state) if self.next_seq else None
        if anchored is None:
            return
        self.anchor = anchored
        ours = self._own_ca_fingerprint()
        self.anchor_ok = ours is None or ours == anchored
        if not self.anchor_ok:
            log.error("the chain's certificate log is anchored to another CA than ours", chain_ca=anchored,
                      our_ca=ours)

    # -- submitting records --------------------------------------------------------------------------

    def _due(self, key: str) -> bool:
        at = self.pending.get(key)
        return at is None or time.monotonic() - at >= RESUBMIT_S

    def _submit(self, key: str, path: str, args: dict[str, Any]) -> None:
        self.engine.submit_node_action(path, args)
        self.pending[key] = time.monotonic()
        self.submitted += 1

    def _record(self, cert: x509.Certificate, ca: x509.Certificate) -> None:
        key = serial_hex(cert.serial_number)
        if cert.serial_number in self.gate.recorded or is_recorded(self.chain.state, cert.serial_number):
            return
        if cert.not_valid_after_utc <= utc_now() or not self._due(key):
            return
        self._submit(key, RECORD_PATH, record_args(cert, ca))
        log.info("certificate submitted to the chain", serial=key)

    def _record_own(self) -> None:
        identity = self.endpoint.identity
        if self.trust.ca_issued and identity.chain:
            self._record(identity.certificate, identity.chain[0])

    def _record_signed(self) -> None:
        assert self.trust.ca is not None
        authority = self.trust.ca.authority
        signed, authority.signed[:] = list(authority.signed), []
        for cert in signed:
            self._record(cert, authority.ca.certificate)

    def _record_revocations(self) -> None:
        """Put on the chain what the CA revoked and the chain does not say yet (signed with the CA key)."""
        assert self.trust.ca is not None
        authority = self.trust.ca.authority
        authority.records.clear()  # the revocation sets below are the source of truth
        on_chain = revocations(self.chain.state)
        nodes = sorted(authority.revoked.node_ids - on_chain.node_ids)
        wanted: list[tuple[str, int | None]] = [(n, None) for n in nodes]
        for revoked_serial in sorted(authority.revoked.serials - on_chain.serials):
            entry = authority.issued.get(revoked_serial)
            if entry is not None and entry.node_id not in authority.revoked.node_ids:
                wanted.append((entry.node_id, revoked_serial))
        for node_id, serial in wanted:
            key = f"revoke:{serial_hex(serial) if serial is not None else node_id}"
            if not self._due(key):
                continue
            args = revoke_args(origin=authority.origin, node_id=node_id, serial=serial, revoked_at=utc_now(),
                               reason="revoked by the origin CA", ca_key=authority.ca.key)
            self._submit(key, REVOKE_PATH, args)
            log.info("revocation submitted to the chain", node=node_id, serial=key)

    def describe(self) -> dict[str, Any]:
        return {
            "recorded": len(self.gate.recorded), "revoked_serials": len(self.gate.revoked.serials),
            "revoked_nodes": len(self.gate.revoked.node_ids), "armed": self.gate.armed_at is not None,
            "grace_s": self.gate.grace.total_seconds(), "submitted": self.submitted, "pending": len(self.pending),
            "cut_off": len(self.cut_off), "refused": self.gate.refusals, "anchor": self.anchor,
            "anchor_ok": self.anchor_ok,
        }
