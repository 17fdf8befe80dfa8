"""Names of the node's Redis keys and channels (the seed contracts of DESIGN.md), with the namespace.

A non-empty namespace `ns` prefixes every key and channel as `ns:`; several nodes then share one Redis.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RedisKeys:
    namespace: str = ""

    def k(self, name: str) -> str:
        return f"{self.namespace}:{name}" if self.namespace else name

    @property
    def truth_doc(self) -> str:
        return self.k("truth:doc")

    @property
    def truth_version(self) -> str:
        return self.k("truth:version")

    @property
    def truth_ts(self) -> str:
        return self.k("truth:ts")

    def node_heartbeat(self, node_id: str) -> str:
        return self.k(f"truth:heartbeat:{node_id}")

    @property
    def mesh_nodes(self) -> str:
        return self.k("truth:mesh:nodes")

    @property
    def mesh_ready(self) -> str:
        return self.k("truth:mesh:ready")

    @property
    def startup_status(self) -> str:
        """A key (the latest status, JSON) and a pub/sub channel of the same name (every change)."""
        return self.k("truth:system:startup_status")

    @property
    def svc_list(self) -> str:
        return self.k("svc:list")

    def svc_cfg(self, svc: str) -> str:
        return self.k(f"svc:cfg:{svc}")

    def svc_hb(self, svc: str) -> str:
        return self.k(f"svc:hb:{svc}")

    def heartbeat_channel(self, svc: str) -> str:
        return self.k(f"{svc}:heartbeat")

    def health(self, svc: str) -> str:
        return self.k(f"health:{svc}")

    @property
    def healer_alerts(self) -> str:
        return self.k("healer:alerts")

    @property
    def healer_heartbeat(self) -> str:
        """The healer's heartbeat: a pub/sub channel (`{svc}:heartbeat` for svc=healer) and a key with a TTL."""
        return self.k("healer:heartbeat")

    def log_stream(self, channel: str) -> str:
        return self.k(f"log:{channel}:stream")
