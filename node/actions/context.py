"""What a guard or an action handler sees: the envelope, the block, the state overlay, the actor."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from node.actions.envelope import Envelope
from node.actions.errors import ActionRejected, Reason
from node.actions.model import BlockContext, Output
from node.actions.state import Overlay


@dataclass
class ActionContext:
    envelope: Envelope
    block: BlockContext
    state: Overlay
    actor_id: str | None = None  # set by the identity guard
    outputs: list[Output] = field(default_factory=list)

    @property
    def action_id(self) -> bytes:
        return self.envelope.action_id

    @property
    def actor(self) -> str:
        """The registered actor id; only handlers behind an identity guard may ask."""
        if self.actor_id is None:
            raise ActionRejected(Reason.UNKNOWN_ACTOR)
        return self.actor_id

    def emit(self, output: Output) -> None:
        self.outputs.append(output)


@dataclass(frozen=True)
class Guard:
    """A named check run before the handler; it raises `ActionRejected` to refuse."""

    name: str
    check: Callable[[ActionContext], None]

    def __str__(self) -> str:
        return self.name
