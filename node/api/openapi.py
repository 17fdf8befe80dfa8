"""The OpenAPI 3.1 description of every route (hand-written: the routes are few and stable).

Tests walk it to call every GET route with generated values, so parameter schemas here state
the real bounds the routes enforce.
"""

from __future__ import annotations

from typing import Any

MAX_INT = 2**63 - 1

_INT = {"type": "integer", "minimum": 0, "maximum": MAX_INT}
_HASH = {"type": "string", "pattern": "^[0-9a-fA-F]{64}$"}
_ERRORS = {
    "400": {"description": "bad input: {\"error\": ...}"},
    "404": {"description": "not found: {\"error\": ...}"},
}


def _path(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": schema, "description": description}


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


def _get(summary: str, params: list[dict[str, Any]] | None = None, *, content: str = "application/json",
         extra: dict[str, Any] | None = None) -> dict[str, Any]:
    responses: dict[str, Any] = {"200": {"description": "OK", "content": {content: {}}}}
    if params:
        responses.update(_ERRORS)
    responses.update(extra or {})
    return {"get": {"summary": summary, "parameters": params or [], "responses": responses}}


ROUTES: dict[str, dict[str, Any]] = {
    "/": _get("The live DAG page (HTML, self-contained)", content="text/html"),
    "/status": _get("Node id, origin, phase, latest block and round, catching up, peer count"),
    "/stats": _get("Counters and hashgraph figures"),
    "/peers": _get("Peers currently known to the transport"),
    "/genesispeers": _get("The founding members of this origin"),
    "/validators/{round}": _get("The peer set in force at a round", [_path("round", _INT, "round number")]),
    "/history": _get("Peer sets over time (joins, leaves, evictions) and the fork evidence behind evictions"),
    "/block/{index}": _get("One block (immutable once a newer block exists)", [_path("index", _INT, "block index")]),
    "/blocks/{start}": _get("Up to `count` blocks from `start`", [
        _path("start", _INT, "first block index"),
        _query("count", {"type": "integer", "minimum": 1, "maximum": 50, "default": 10}, "at most 50"),
    ]),
    "/graph": _get("A window of the hashgraph (at most 30 rounds, 3000 events) for the DAG page", [
        _query("from_round", _INT, "first round (default: the last 8 rounds)"),
        _query("to_round", _INT, "last round (default: the newest)"),
    ]),
    "/events/{hash}": _get("One event with its consensus coordinates", [_path("hash", _HASH, "event hash, hex")]),
    "/rounds/{round}": _get("Witnesses, fame and received events of a round", [_path("round", _INT, "round")]),
    "/executors": _get("The executor committee of the latest election"),
    "/executors/{request}": _get("One executor request: status, agreed result or failure reason, responses",
                                 [_path("request", _HASH, "request id (the action id), hex")]),
    "/federation": _get("Federation state: this origin and the origins it reaches"),
    "/certificates": _get("The certificate transparency log (issued, renewed, revoked)"),
    "/health": _get("Liveness: 200 while the process serves"),
    "/ready": _get("Readiness: 200 in phase consensus or federated, else 503",
                   extra={"503": {"description": "not ready"}}),
    "/metrics": _get("Prometheus metrics of this node", content="text/plain"),
    "/openapi.json": _get("This document"),
    "/actions": {"post": {
        "summary": "Submit a signed action envelope (its wire bytes)",
        "parameters": [
            _query("wait", {"type": "boolean", "default": False}, "answer with the receipt once executed"),
            _query("timeout", {"type": "number", "exclusiveMinimum": 0, "maximum": 300, "default": 30},
                   "seconds to wait for the receipt"),
        ],
        "requestBody": {"required": True, "content": {"application/octet-stream": {}}},
        "responses": {
            "202": {"description": "admitted: {\"action_id\": hex}"},
            "200": {"description": "with wait=true: the receipt"},
            "400": {"description": "refused: {\"error\": ..., \"reason\": code}"},
            "413": {"description": "envelope too large"},
            "503": {"description": "the node takes no actions now"},
            "504": {"description": "with wait=true: no receipt in time"},
        },
    }},
    "/signals": {"get": {
        "summary": "WebSocket: signals for one member as JSON text frames (first frame: {subscribed, queued})",
        "x-websocket": True,
        "parameters": [_query("member", {"type": "string", "minLength": 1, "maxLength": 128}, "actor id")],
        "responses": {"101": {"description": "switching protocols"}},
    }},
}


def openapi_spec(version: str) -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "node chain inspection API", "version": version},
        "paths": ROUTES,
    }
