"""How other layers' services reach the running consensus engine.

Services start side by side under the supervisor; one that needs the engine (federation, the
certificate transparency log) waits here until the engine has started and published itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import trio

from node.runtime.service import NodeContext

if TYPE_CHECKING:
    from node.engine.service import ConsensusEngine

ENGINE_KEY = "engine"
ENGINE_READY_KEY = "engine_ready"


def _ready_event(ctx: NodeContext) -> trio.Event:
    event = ctx.extras.get(ENGINE_READY_KEY)
    if not isinstance(event, trio.Event):
        event = ctx.extras[ENGINE_READY_KEY] = trio.Event()
    return event


def publish_engine(ctx: NodeContext, engine: ConsensusEngine) -> None:
    ctx.extras[ENGINE_KEY] = engine
    _ready_event(ctx).set()


async def engine_of(ctx: NodeContext) -> ConsensusEngine:
    """The running engine, once it is up (waits until then)."""
    await _ready_event(ctx).wait()
    engine: ConsensusEngine = ctx.extras[ENGINE_KEY]
    return engine
