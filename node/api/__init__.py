"""The chain inspection HTTP API, Prometheus metrics and the live DAG page.

The engine builds a `NodeView` (the only thing the API reads or calls) and runs an `ApiService`:

    view = NodeView(store, node_id=..., origin=..., phase=lambda: phases.phase.value, ...)
    url = await nursery.start(ApiService(view, bind="127.0.0.1:7800", home=home).run)
"""

from node.api.errors import ApiError, BadRequest, NotFound
from node.api.metrics import NodeMetrics
from node.api.service import ApiService
from node.api.view import NodeView

__all__ = ["ApiError", "ApiService", "BadRequest", "NodeMetrics", "NodeView", "NotFound"]
