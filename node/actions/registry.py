"""The registry of action paths: which handler runs a path, behind which guards.

    registry = Registry()

    @registry.action("/points/join", guards=[...])
    def join(ctx: ActionContext, args: dict[str, Any]) -> Any:
        '''Join an open point as a member.'''   # the description `node actions list` shows

A handler reads and writes only `ctx.state`, raises `ActionRejected` to refuse, may `ctx.emit`
outputs, and returns a JSON-like result for the receipt.  It must be deterministic: no clock,
no randomness, no IO.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from node.actions.context import ActionContext, Guard
from node.actions.errors import RegistryError
from node.actions.guards import BEFORE_IDENTITY, NONCE, REGISTERED

Handler = Callable[[ActionContext, dict[str, Any]], Any]
_PATH = re.compile(r"^(/[a-z0-9_]+)+$")


@dataclass(frozen=True)
class ActionSpec:
    path: str
    handler: Handler
    guards: tuple[Guard, ...]  # every guard, in the order they run
    executors: bool  # run by the elected executor committee, reconciled from their responses
    description: str

    @property
    def guard_names(self) -> list[str]:
        return [g.name for g in self.guards]


class Registry:
    def __init__(self) -> None:
        self._specs: dict[str, ActionSpec] = {}
        self._deferred: list[Callable[[Registry], object]] = []

    def defer(self, loader: Callable[[Registry], object]) -> None:
        """Run `loader(self)` at the first lookup: other layers register their actions late, so that
        importing one of their modules first (which imports this package) is no import cycle."""
        self._deferred.append(loader)

    def _settle(self) -> None:
        while self._deferred:
            # Dropped only once it ran: a loader that fails keeps failing for every caller (the
            # same on every node), rather than for the first lookup only.
            self._deferred[0](self)
            self._deferred.pop(0)

    def action(
        self,
        path: str,
        *,
        guards: Iterable[Guard] = (),
        identity: Guard = REGISTERED,
        executors: bool = False,
    ) -> Callable[[Handler], Handler]:
        """Register the decorated handler for `path`; its docstring is the description."""
        if not _PATH.match(path):
            raise RegistryError(f"bad action path {path!r}")
        if path in self._specs:
            raise RegistryError(f"action path {path} registered twice")
        extra = tuple(guards)

        def register(handler: Handler) -> Handler:
            doc = inspect.getdoc(handler) or ""
            self._specs[path] = ActionSpec(
                path=path,
                handler=handler,
                guards=(*BEFORE_IDENTITY, identity, NONCE, *extra),
                executors=executors,
                description=doc.split("\n\n")[0].replace("\n", " "),
            )
            return handler

        return register

    def get(self, path: str) -> ActionSpec | None:
        if self._deferred:
            self._settle()
        return self._specs.get(path)

    def specs(self) -> list[ActionSpec]:
        self._settle()
        return [self._specs[p] for p in sorted(self._specs)]

    def __contains__(self, path: object) -> bool:
        self._settle()
        return path in self._specs
