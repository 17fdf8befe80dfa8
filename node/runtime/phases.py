"""The node's phase machine: self-signed -> ca-issued -> consensus -> federated.

Transitions are one table keyed by (current phase, trigger).  A layer drives the machine by firing
a named trigger (`machine.fire(Trigger.CA_ISSUED)`); observers (the Redis status publisher, the
status line, the supervisor's mesh gate) are told of every change.  Pure and synchronous.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

from node.runtime.errors import PhaseError


class Phase(enum.StrEnum):
    SELF_SIGNED = "self-signed"
    CA_ISSUED = "ca-issued"
    CONSENSUS = "consensus"
    FEDERATED = "federated"


class Trigger(enum.StrEnum):
    CA_ISSUED = "ca-issued"  # trust layer: the origin CA signed our certificate
    CONSENSUS_JOINED = "consensus-joined"  # consensus layer: we are deciding rounds with our origin
    FEDERATION_UP = "federation-up"  # federation layer: other origins reachable
    FEDERATION_LOST = "federation-lost"
    CONSENSUS_LOST = "consensus-lost"  # lost quorum / fell behind
    CERT_REVOKED = "cert-revoked"


TRANSITIONS: dict[tuple[Phase, Trigger], Phase] = {
    (Phase.SELF_SIGNED, Trigger.CA_ISSUED): Phase.CA_ISSUED,
    (Phase.CA_ISSUED, Trigger.CONSENSUS_JOINED): Phase.CONSENSUS,
    (Phase.CONSENSUS, Trigger.FEDERATION_UP): Phase.FEDERATED,
    (Phase.FEDERATED, Trigger.FEDERATION_LOST): Phase.CONSENSUS,
    (Phase.CONSENSUS, Trigger.CONSENSUS_LOST): Phase.CA_ISSUED,
    (Phase.FEDERATED, Trigger.CONSENSUS_LOST): Phase.CA_ISSUED,
    (Phase.CA_ISSUED, Trigger.CERT_REVOKED): Phase.SELF_SIGNED,
    (Phase.CONSENSUS, Trigger.CERT_REVOKED): Phase.SELF_SIGNED,
    (Phase.FEDERATED, Trigger.CERT_REVOKED): Phase.SELF_SIGNED,
}


@dataclass(frozen=True)
class PhaseChange:
    old: Phase
    new: Phase
    trigger: Trigger


Observer = Callable[[PhaseChange], None]


class PhaseMachine:
    def __init__(self, initial: Phase = Phase.SELF_SIGNED) -> None:
        self._phase = initial
        self._observers: list[Observer] = []
        self.history: list[PhaseChange] = []

    @property
    def phase(self) -> Phase:
        return self._phase

    def observe(self, observer: Observer) -> None:
        self._observers.append(observer)

    def can_fire(self, trigger: Trigger) -> bool:
        return (self._phase, trigger) in TRANSITIONS

    def fire(self, trigger: Trigger) -> PhaseChange:
        """Apply a transition; PhaseError when the table has none for the current phase."""
        new = TRANSITIONS.get((self._phase, trigger))
        if new is None:
            raise PhaseError(f"no transition from phase {self._phase} on {trigger}")
        change = PhaseChange(self._phase, new, trigger)
        self._phase = new
        self.history.append(change)
        for observer in list(self._observers):
            observer(change)
        return change

    def at_least(self, phase: Phase) -> bool:
        order = list(Phase)
        return order.index(self._phase) >= order.index(phase)
