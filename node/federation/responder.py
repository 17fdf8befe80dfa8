"""An authoritative DNS responder for the node's own origin, on a Trio UDP socket.

`DnsResponder(bind, zone_source)` answers from `zone_source()`, a callable the engine provides that
returns the origin's current `OriginRecords` (derived from the chain's state: its nodes' endpoints
and its CA pin). Each datagram is answered inline, one at a time, so a flood costs one socket
buffer and never a growing set of tasks; garbage is dropped without an answer. A `zone_source`
that fails makes the answer SERVFAIL (and is logged), never stops the service.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass

import trio

from node.federation.errors import ZoneUnavailable
from node.federation.records import OriginRecords
from node.federation.zone import MAX_QUERY_BYTES, ZoneAnswerer

log = logging.getLogger(__name__)

Address = tuple[str, int]
ZoneSource = Callable[[], OriginRecords]


@dataclass
class ResponderStats:
    received: int = 0
    answered: int = 0
    dropped: int = 0
    source_failures: int = 0


class DnsResponder:
    def __init__(self, bind: Address, zone_source: ZoneSource) -> None:
        self.bind = bind
        self.zone_source = zone_source
        self.stats = ResponderStats()
        self._answerer = ZoneAnswerer()

    def answer(self, data: bytes) -> bytes | None:
        """Answer one datagram (also usable without a socket, e.g. in benchmarks)."""
        self.stats.received += 1
        try:
            records: OriginRecords | None = self.zone_source()
        except ZoneUnavailable as exc:  # expected while the origin starts: SERVFAIL, no traceback
            log.debug("DNS zone not ready: %s", exc)
            self.stats.source_failures += 1
            records = None
        except Exception:  # the engine's state is not our concern here: answer SERVFAIL, keep serving
            log.exception("the DNS zone source failed")
            self.stats.source_failures += 1
            records = None
        response = self._answerer.answer(data, records)
        if response is None:
            self.stats.dropped += 1
        else:
            self.stats.answered += 1
        return response

    async def run(self, *, task_status: trio.TaskStatus[Address] = trio.TASK_STATUS_IGNORED) -> None:
        host, port = self.bind
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with trio.socket.socket(family, socket.SOCK_DGRAM) as sock:
            await sock.bind((host, port))
            bound = sock.getsockname()
            task_status.started((bound[0], bound[1]))
            while True:
                try:
                    # One byte more than a query may have, so an oversized one is seen as such.
                    data, peer = await sock.recvfrom(MAX_QUERY_BYTES + 1)
                except ConnectionResetError:  # an ICMP error from an earlier send (Windows, some Linux paths)
                    continue
                response = self.answer(data)
                if response is None:
                    continue
                try:
                    await sock.sendto(response, peer)
                except OSError as exc:  # an unreachable client must not stop the service
                    log.debug("DNS answer to %s not sent: %s", peer, exc)
