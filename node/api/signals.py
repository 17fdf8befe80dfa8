"""Delivery of signals to WebSocket subscribers, filtered by member.

A signal goes to every live subscription of each member it is addressed to.  A member with no
live subscription gets it queued (bounded, oldest dropped) and receives the queue first when it
connects again.  A subscriber too slow to keep up is cut off (its socket closes once it has read
what was already buffered) and the overflow goes to its member's queue, so it resumes on reconnect.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from typing import Any

import trio

Signal = dict[str, Any]


class Subscription:
    """One live subscriber: a receive channel plus what was queued for it while it was away."""

    def __init__(
        self,
        member: str,
        backlog: list[Signal],
        receiver: trio.MemoryReceiveChannel[Signal],
        sender: trio.MemorySendChannel[Signal],
    ) -> None:
        self.member = member
        self.backlog = backlog
        self.receiver = receiver
        self.sender = sender


class SignalHub:
    def __init__(
        self,
        *,
        queue_per_member: int = 256,
        max_queued_members: int = 10_000,
        subscriber_buffer: int = 256,
        on_drop: Callable[[int], None] = lambda n: None,
    ) -> None:
        self.queue_per_member = queue_per_member
        self.max_queued_members = max_queued_members
        self.subscriber_buffer = subscriber_buffer
        self._on_drop = on_drop
        self._live: dict[str, list[trio.MemorySendChannel[Signal]]] = {}
        self._queued: OrderedDict[str, deque[Signal]] = OrderedDict()

    def subscriber_count(self) -> int:
        return sum(len(v) for v in self._live.values())

    def queued(self, member: str) -> int:
        return len(self._queued.get(member, ()))

    def publish(self, member_ids: Iterable[str], signal: Signal) -> int:
        """Hand `signal` to each member's subscribers (or queue); returns live deliveries."""
        delivered = 0
        for member in dict.fromkeys(member_ids):  # each member once, in order
            senders = self._live.get(member)
            if not senders:
                self._enqueue(member, signal)
                continue
            for sender in list(senders):
                try:
                    sender.send_nowait(signal)
                    delivered += 1
                except trio.WouldBlock:
                    self._drop_subscriber(member, sender)
                    self._enqueue(member, signal)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    self._drop_subscriber(member, sender)
                    self._enqueue(member, signal)
        return delivered

    def _enqueue(self, member: str, signal: Signal) -> None:
        queue = self._queued.get(member)
        if queue is None:
            if len(self._queued) >= self.max_queued_members:
                _, evicted = self._queued.popitem(last=False)  # the member queued longest ago
                self._on_drop(len(evicted))
            queue = self._queued[member] = deque(maxlen=self.queue_per_member)
        elif len(queue) == queue.maxlen:
            self._on_drop(1)
        queue.append(signal)
        self._queued.move_to_end(member)

    def _drop_subscriber(self, member: str, sender: trio.MemorySendChannel[Signal]) -> None:
        sender.close()
        senders = self._live.get(member, [])
        if sender in senders:
            senders.remove(sender)
        if not senders:
            self._live.pop(member, None)

    def subscribe(self, member: str) -> Subscription:
        """Register a live subscriber and hand it the member's queued signals (synchronously: no gap)."""
        sender, receiver = trio.open_memory_channel[Signal](self.subscriber_buffer)
        self._live.setdefault(member, []).append(sender)
        backlog = list(self._queued.pop(member, ()))
        return Subscription(member, backlog, receiver, sender)

    def unsubscribe(self, sub: Subscription) -> None:
        self._drop_subscriber(sub.member, sub.sender)
        sub.receiver.close()
