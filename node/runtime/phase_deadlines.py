"""Deadlines for the phase machine's transitions, and when to raise (and raise again) an alert.

Each phase must be reached within its deadline of entering the one before it (the node's start for
`self-signed`, which it reaches once its endpoint runs): by default self-signed in 10 s, ca-issued in
30 s, consensus in 2 min. A missed deadline is an alert, repeated with exponential backoff while
the phase stays unreached; falling back (a revoked certificate) starts the clock again.
`federated` has no deadline here (the federation layer owns it).

Sans-IO: times are monotonic seconds passed in; the trust service logs, counts and publishes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from node.errors import ConfigError
from node.runtime.phases import Phase

if TYPE_CHECKING:
    from node.config import Settings

DEFAULT_DEADLINES: dict[Phase, float] = {Phase.SELF_SIGNED: 10.0, Phase.CA_ISSUED: 30.0, Phase.CONSENSUS: 120.0}
NEXT: dict[Phase | None, Phase] = {None: Phase.SELF_SIGNED, Phase.SELF_SIGNED: Phase.CA_ISSUED,
                                   Phase.CA_ISSUED: Phase.CONSENSUS}
REALERT_MAX_S = 300.0


def parse_deadlines(text: str) -> dict[Phase, float]:
    """`self-signed=10,ca-issued=30,consensus=120` (any subset; the rest keep their defaults)."""
    out = dict(DEFAULT_DEADLINES)
    for item in (p.strip() for p in text.split(",") if p.strip()):
        name, sep, value = item.partition("=")
        try:
            phase, seconds = Phase(name.strip()), float(value)
        except ValueError as exc:
            raise ConfigError(f"phase deadline {item!r} is not PHASE=SECONDS") from exc
        if not sep or phase not in DEFAULT_DEADLINES or not 0.1 <= seconds <= 86400:
            names = ", ".join(DEFAULT_DEADLINES)
            raise ConfigError(f"phase deadline {item!r}: a deadline of 0.1 s .. 1 day for {names}")
        out[phase] = seconds
    return out


def deadlines_from(settings: Settings) -> dict[Phase, float]:
    """The `phase_deadlines` setting (already checked by node/config.py), as phase -> seconds."""
    return parse_deadlines(settings.phase_deadlines)


@dataclass(frozen=True)
class Missed:
    """An alert: `phase` not reached `waited_s` after entering the previous one (deadline `deadline_s`)."""

    phase: Phase
    waited_s: float
    deadline_s: float
    alert: int  # 1 for the first alert of this wait, then 2, 3, ...
    next_alert_s: float  # when the next alert is due if the phase is still not reached

    def to_obj(self) -> dict[str, object]:
        return {"phase": self.phase.value, "waited_s": round(self.waited_s, 3), "deadline_s": self.deadline_s,
                "alert": self.alert}


class PhaseDeadlines:
    def __init__(self, started: float, deadlines: Mapping[Phase, float] = DEFAULT_DEADLINES) -> None:
        self.deadlines = dict(deadlines)
        self.started = started
        self.current: Phase | None = None
        self.since = started
        self.alerts = 0  # alerts raised for the current wait
        self.missed_total = 0  # every alert since start (a counter)
        self.reached_after: dict[Phase, float] = {}  # first time each phase was reached, seconds after start
        self.late: Missed | None = None  # the standing alert, until the phase is reached
        self._alert_at = started + self.deadlines[Phase.SELF_SIGNED]
        self._realert = self.deadlines[Phase.SELF_SIGNED]

    @property
    def waiting_for(self) -> Phase | None:
        return NEXT.get(self.current)

    def reached(self, phase: Phase, now: float) -> Missed | None:
        """The node entered `phase`; returns the alert it clears (if it was late)."""
        cleared = self.late
        self.current, self.since, self.alerts, self.late = phase, now, 0, None
        self.reached_after.setdefault(phase, round(now - self.started, 3))
        target = self.waiting_for
        self._alert_at = now + self.deadlines[target] if target is not None else float("inf")
        if target is not None:
            self._realert = self.deadlines[target]
        return cleared

    def poll(self, now: float) -> Missed | None:
        """An alert when one is due now (the first at the deadline, then with growing pauses)."""
        target = self.waiting_for
        if target is None or now < self._alert_at:
            return None
        self.alerts += 1
        self.missed_total += 1
        self._realert = min(self._realert * 2, REALERT_MAX_S)
        self._alert_at = now + self._realert
        self.late = Missed(target, now - self.since, self.deadlines[target], self.alerts, self._realert)
        return self.late

    def next_poll(self, now: float) -> float:
        """Seconds until `poll` may have something to say."""
        return max(self._alert_at - now, 0.0)
