"""The chain inspection HTTP API, Prometheus metrics, signals over WebSocket and the live DAG page.

The engine builds one `NodeView` (the only thing the API reads or calls) and runs an `ApiService`:

    view = NodeView(store, node_id=key.fingerprint, origin=origin, phase=lambda: phases.phase.value,
                    peers=transport_peers, genesis_peers=[m.to_obj() for m in genesis.members],
                    submit=engine.submit)          # submit(wire) -> action_id; raises ActionError
    url = await nursery.start(ApiService(view, bind="127.0.0.1:7800", home=home).run)
    view.graph = hashgraph                          # once consensus runs (None before)
    view.block_applied(index, block_result)         # after each commit_block: receipts, signals
    view.metrics.events_inserted.inc(n)             # and the other counters in NodeMetrics
"""

from node.api.errors import ApiError, BadRequest, NotFound
from node.api.metrics import NodeMetrics
from node.api.service import ApiService
from node.api.view import NodeView

__all__ = ["ApiError", "ApiService", "BadRequest", "NodeMetrics", "NodeView", "NotFound"]
