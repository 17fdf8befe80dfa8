"""The truth a process currently follows, with observers for updates (healer channels, settings)."""

from __future__ import annotations

from collections.abc import Callable

import trio

from node.runtime.truth import Truth


class TruthHolder:
    def __init__(self, initial: Truth, source: str) -> None:
        self.current = initial
        self.source = source  # "default", "home file", "redis"
        self.loaded = trio.Event()  # set once a real (version >= 1) truth is known
        if initial.version >= 1:
            self.loaded.set()
        self._observers: list[Callable[[Truth], None]] = []

    def observe(self, observer: Callable[[Truth], None]) -> None:
        self._observers.append(observer)

    def set(self, truth: Truth, source: str) -> bool:
        """Adopt `truth`; False (and nothing changes) when it is the same document."""
        if truth.doc == self.current.doc:
            return False
        self.current = truth
        self.source = source
        if truth.version >= 1:
            self.loaded.set()
        for observer in list(self._observers):
            observer(truth)
        return True

    def interval_for(self, svc: str, fallback: float) -> float:
        if svc == "healer":
            return self.current.healer_interval_sec
        for channel in self.current.channels:
            if channel.svc == svc:
                return channel.interval_sec
        return fallback
