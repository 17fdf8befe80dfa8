"""What a service is, and the registry through which layers plug services into the daemon.

A service has a `name`, a `kind` (blocking | async | federated, the default when the truth's
startup section does not name it) and `async run(*, task_status)`: it calls
`task_status.started()` once it is ready, then runs until cancelled.  It may define `healthy()`;
while that returns False its heartbeat stops (so the healer sees it).

A layer registers a factory, which the daemon calls with the `NodeContext` at start:

    # node/<layer>/plugin.py  (found automatically: every node.<pkg>.plugin module with register())
    def register(registry: ServiceRegistry) -> None:
        registry.add("consensus", "blocking", lambda ctx: ConsensusService(ctx))
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import trio

from node.runtime.errors import PhaseError
from node.runtime.truth import KINDS

if TYPE_CHECKING:
    from node.config import Settings
    from node.crypto import PrivateKey
    from node.runtime.home import Home
    from node.runtime.phases import PhaseMachine
    from node.runtime.redis_bridge import RedisBridge
    from node.runtime.status import NodeStatus
    from node.runtime.truth_holder import TruthHolder


@runtime_checkable
class Service(Protocol):
    name: str
    kind: str

    async def run(self, *, task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED) -> None: ...


@dataclass
class NodeContext:
    """Everything a service factory may use.  Services never import the daemon."""

    settings: Settings
    home: Home
    key: PrivateKey
    phases: PhaseMachine
    redis: RedisBridge
    truth: TruthHolder
    status: NodeStatus
    mesh_ready: trio.Event = field(default_factory=trio.Event)  # federated components wait for it
    extras: dict[str, Any] = field(default_factory=dict)  # layers share objects by name (e.g. "storage")

    @property
    def node_id(self) -> str:
        return self.key.fingerprint


Factory = Callable[[NodeContext], Service]


@dataclass(frozen=True)
class Registration:
    name: str
    kind: str
    factory: Factory


class ServiceRegistry:
    def __init__(self) -> None:
        self._items: dict[str, Registration] = {}

    def add(self, name: str, kind: str, factory: Factory) -> None:
        if kind not in KINDS:
            raise PhaseError(f"service kind {kind!r} is not one of {', '.join(KINDS)}")
        if name in self._items:
            raise PhaseError(f"service {name!r} is registered twice")
        self._items[name] = Registration(name, kind, factory)

    def get(self, name: str) -> Registration | None:
        return self._items.get(name)

    def __iter__(self) -> Any:
        return iter(list(self._items.values()))

    def __len__(self) -> int:
        return len(self._items)

    def names(self) -> list[tuple[str, str]]:
        return [(r.name, r.kind) for r in self._items.values()]


def load_plugins(registry: ServiceRegistry, which: str = "all") -> list[str]:
    """Import every `node.<package>.plugin` that exists and call its `register(registry)`.

    `which` is the `plugins` setting: "all", "none", or a comma-separated list of package names."""
    if which == "none":
        return []
    wanted = None if which == "all" else set(which.split(","))
    import node

    loaded = []
    for info in sorted(pkgutil.iter_modules(node.__path__), key=lambda m: m.name):
        if not info.ispkg or info.name in ("runtime", "commands") or (wanted is not None and info.name not in wanted):
            continue
        folder = getattr(info.module_finder, "path", None)
        if folder is None or not (Path(folder) / info.name / "plugin.py").exists():
            continue  # checked on disk: importing a layer that has no plugin would be wasted (or fragile)
        name = f"node.{info.name}.plugin"
        module = importlib.import_module(name)
        register = getattr(module, "register", None)
        if callable(register):
            register(registry)
            loaded.append(name)
    return loaded
