"""Prometheus metrics of one node, in a registry of its own (several nodes may share a process).

The engine updates them with plain calls (`view.metrics.events_inserted.inc(n)`); gauges that
mirror state the view can read (phase, peers, latest block and round) are refreshed by the view
just before each scrape, so nobody has to remember to set them.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Enum, Gauge, Histogram, Info, generate_latest

from node.runtime.phases import Phase

# Seconds from submission to the receipt: a block takes a few gossip rounds, federation longer.
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0)
PHASE_STATES = [p.value for p in Phase] + ["unknown"]
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class NodeMetrics:
    def __init__(self, *, node_id: str, origin: str, version: str) -> None:
        self.registry = r = CollectorRegistry(auto_describe=True)
        self.events_inserted = Counter("node_events_inserted", "Events inserted into the hashgraph", registry=r)
        self.events_rejected = Counter(
            "node_events_rejected", "Events the hashgraph refused, by reason", ["reason"], registry=r
        )
        self.rounds_decided = Counter("node_rounds_decided", "Rounds whose order was decided", registry=r)
        self.blocks_committed = Counter("node_blocks_committed", "Blocks applied and stored", registry=r)
        self.actions_submitted = Counter("node_actions_submitted", "Actions admitted through the API", registry=r)
        self.actions_refused = Counter(
            "node_actions_refused", "Actions refused at admission, by reason", ["reason"], registry=r
        )
        self.action_latency = Histogram(
            "node_action_latency_seconds", "Submission to receipt", buckets=LATENCY_BUCKETS, registry=r
        )
        self.peers = Gauge("node_peers", "Peers currently connected", registry=r)
        self.latest_block = Gauge("node_latest_block", "Index of the last applied block (-1: none)", registry=r)
        self.latest_round = Gauge("node_latest_round", "Highest round in the hashgraph (-1: none)", registry=r)
        self.phase = Enum("node_phase", "Phase of the node", states=PHASE_STATES, registry=r)
        self.gossip_bytes = Counter(
            "node_gossip_bytes", "Gossip payload bytes, by direction (sent|received)", ["direction"], registry=r
        )
        self.gossip_errors = Counter("node_gossip_errors", "Failed gossip exchanges, by kind", ["kind"], registry=r)
        self.redis_bridge_up = Gauge("node_redis_bridge_up", "1 while the local Redis bridge is connected", registry=r)
        self.signal_subscribers = Gauge("node_signal_subscribers", "Open WebSocket /signals connections", registry=r)
        self.signals_dropped = Counter(
            "node_signals_dropped", "Signals dropped because a subscriber or queue was full", registry=r
        )
        self.http_requests = Counter(
            "node_http_requests", "API requests, by route and status class", ["route", "status"], registry=r
        )
        self.node_info = Info("node", "Node identity and software version", registry=r)
        self.node_info.info({"version": version, "origin": origin, "node_id": node_id})
        self.phase.state("unknown")
        self.latest_block.set(-1)
        self.latest_round.set(-1)

    def set_phase(self, phase: str) -> None:
        self.phase.state(phase if phase in PHASE_STATES else "unknown")

    def total(self, counter: str) -> int:
        """The value of an unlabelled counter (for JSON stats)."""
        value = self.registry.get_sample_value(counter + "_total")
        return int(value or 0)

    def render(self) -> bytes:
        """The Prometheus text exposition of this node's registry."""
        data: bytes = generate_latest(self.registry)
        return data
