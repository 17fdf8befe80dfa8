"""Heartbeat miss/ok decisions, sans-IO: beats and `now` in, health events out.

Used by the healer (one watch per heartbeat channel named in the truth) and by the sentinel (one
watch: the healer).  A watch never seen yet gets a warm-up of
`min(timeout, max(2 * interval, 0.75 * timeout))` from the moment it is (re)armed before it can
miss; after a beat it misses when silent for `timeout`.  Each transition is reported once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Status = Literal["unknown", "ok", "miss"]


@dataclass(frozen=True)
class Watch:
    name: str
    interval: float
    timeout: float

    @property
    def warmup(self) -> float:
        return min(self.timeout, max(2 * self.interval, 0.75 * self.timeout))


@dataclass(frozen=True)
class HealthEvent:
    name: str
    status: Literal["ok", "miss"]
    at: float
    silent_for: float | None  # seconds since the last beat (None: never seen since armed)


@dataclass
class _State:
    watch: Watch
    armed_at: float
    last_seen: float | None = None
    status: Status = "unknown"


class HeartbeatMonitor:
    def __init__(self, watches: list[Watch], now: float) -> None:
        self._states: dict[str, _State] = {}
        self.configure(watches, now)

    def configure(self, watches: list[Watch], now: float) -> None:
        """Replace the watch list; a watch kept by name keeps its state (a truth update is not a reset)."""
        old = self._states
        self._states = {}
        for watch in watches:
            state = old.get(watch.name)
            if state is None:
                self._states[watch.name] = _State(watch, armed_at=now)
            else:
                state.watch = watch
                self._states[watch.name] = state

    def reset(self, now: float) -> None:
        """Forget every beat (e.g. after the Redis connection was lost) and restart the warm-up."""
        self._states = {name: _State(s.watch, armed_at=now) for name, s in self._states.items()}

    @property
    def names(self) -> list[str]:
        return list(self._states)

    def status(self, name: str) -> Status:
        return self._states[name].status

    def observe(self, name: str, now: float) -> list[HealthEvent]:
        state = self._states.get(name)
        if state is None:
            return []
        silent = None if state.last_seen is None else now - state.last_seen
        state.last_seen = now
        if state.status == "ok":
            return []
        state.status = "ok"
        return [HealthEvent(name, "ok", now, silent)]

    def _deadline(self, state: _State) -> float:
        if state.last_seen is None:
            return state.armed_at + state.watch.warmup
        return state.last_seen + state.watch.timeout

    def check(self, now: float) -> list[HealthEvent]:
        events = []
        for name, state in self._states.items():
            if state.status != "miss" and now >= self._deadline(state):
                state.status = "miss"
                silent = None if state.last_seen is None else now - state.last_seen
                events.append(HealthEvent(name, "miss", now, silent))
        return events

    def next_deadline(self) -> float | None:
        """When `check` may next report something (None: nothing can miss until a beat arrives)."""
        pending = [self._deadline(s) for s in self._states.values() if s.status != "miss"]
        return min(pending) if pending else None
