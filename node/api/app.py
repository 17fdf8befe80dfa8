"""The Starlette application: routes, parameter checks and JSON errors.

Every answer is JSON with typed values (ints as ints, hashes as hex) except `/metrics`
(Prometheus text) and `/` (the DAG page).  Bad input is a 400 or 404 with `{"error": ...}`;
a 500 means a bug here, never a user mistake, and carries no traceback.
"""

from __future__ import annotations

import json
import re
from importlib import resources
from typing import Any

import trio
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect

from node.actions.envelope import MAX_ENVELOPE_BYTES
from node.actions.errors import ActionError
from node.api import dag, queries
from node.api.errors import ApiError, BadRequest, PayloadTooLarge, Unavailable
from node.api.metrics import CONTENT_TYPE
from node.api.openapi import openapi_spec
from node.api.view import NodeView
from node.errors import InvalidInput

MAX_INT = 2**63 - 1
MAX_WAIT_S = 300.0
DEFAULT_WAIT_S = 30.0
CARRY_WAIT_S = 10.0  # how long an acknowledgement may wait for the action to be in a stored event
MAX_MEMBER_CHARS = 128
_DIGITS = re.compile(r"[0-9]{1,19}")
_HASH = re.compile(r"[0-9a-fA-F]{64}")
_ROUTE_NAMES = frozenset({
    "status", "stats", "peers", "genesispeers", "validators", "history", "block", "blocks", "graph", "events", "rounds",
    "executors", "federation", "certificates", "health", "ready", "metrics", "actions", "signals", "openapi.json",
})


def error(status: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status)


def int_param(value: str | None, name: str, *, default: int | None = None, lo: int = 0, hi: int = MAX_INT) -> int:
    if value is None or value == "":
        if default is None:
            raise BadRequest(f"{name} is required")
        return default
    if not _DIGITS.fullmatch(value):
        raise BadRequest(f"{name} must be a non-negative integer")
    number = int(value)
    if not lo <= number <= hi:
        raise BadRequest(f"{name} must be between {lo} and {hi}")
    return number


def optional_int(value: str | None, name: str) -> int | None:
    return None if value is None or value == "" else int_param(value, name)


def hash_param(value: str) -> bytes:
    if not _HASH.fullmatch(value):
        raise BadRequest("an event hash is 64 hex digits")
    return bytes.fromhex(value)


def bool_param(value: str | None, name: str) -> bool:
    if value is None or value.lower() in ("", "false", "0", "no"):
        return False
    if value.lower() in ("true", "1", "yes"):
        return True
    raise BadRequest(f"{name} must be true or false")


def float_param(value: str | None, name: str, default: float, hi: float) -> float:
    if value is None or value == "":
        return default
    try:
        number = float(value)
    except ValueError:
        raise BadRequest(f"{name} must be a number of seconds") from None
    if not 0 < number <= hi:  # also refuses nan
        raise BadRequest(f"{name} must be in (0, {hi:g}]")
    return number


class RequestCounter:
    """Counts requests by first path segment and status class (bounded label values)."""

    def __init__(self, app: ASGIApp, view: NodeView) -> None:
        self.app = app
        self.view = view

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        segment = str(scope.get("path", "/")).split("/")[1] or "page"
        route = segment if segment in _ROUTE_NAMES or segment == "page" else "other"
        status = {"code": 101 if scope["type"] == "websocket" else 500}

        async def counting_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, counting_send)
        finally:
            self.view.metrics.http_requests.labels(route, f"{status['code'] // 100}xx").inc()


def build_app(view: NodeView) -> Starlette:
    page = resources.files("node.api").joinpath("static/dag.html").read_text(encoding="utf-8")

    async def status(request: Request) -> Response:
        return JSONResponse(queries.status(view))

    async def stats(request: Request) -> Response:
        return JSONResponse(queries.stats(view))

    async def peers(request: Request) -> Response:
        return JSONResponse({"peers": view.peers()})

    async def genesispeers(request: Request) -> Response:
        return JSONResponse({"origin": view.origin, "peers": view.genesis_peers})

    async def validators(request: Request) -> Response:
        return JSONResponse(queries.validators(view, int_param(request.path_params["round"], "round")))

    async def block(request: Request) -> Response:
        index = int_param(request.path_params["index"], "index")
        doc = queries.block(view, index)
        latest = view.latest_block()
        immutable = latest is not None and index < latest
        cache = "public, max-age=31536000, immutable" if immutable else "no-cache"
        return JSONResponse(doc, headers={"cache-control": cache})

    async def blocks(request: Request) -> Response:
        start = int_param(request.path_params["start"], "start")
        count = int_param(request.query_params.get("count"), "count", default=10, lo=1,
                          hi=queries.MAX_BLOCKS_PER_PAGE)
        return JSONResponse(queries.blocks(view, start, count))

    async def graph(request: Request) -> Response:
        lo = optional_int(request.query_params.get("from_round"), "from_round")
        hi = optional_int(request.query_params.get("to_round"), "to_round")
        if lo is not None and hi is not None and lo > hi:
            raise BadRequest("from_round must not exceed to_round")
        return JSONResponse(dag.graph_window(view, lo, hi))

    async def events(request: Request) -> Response:
        return JSONResponse(dag.event(view, hash_param(request.path_params["hash"])))

    async def rounds(request: Request) -> Response:
        return JSONResponse(dag.round_info(view, int_param(request.path_params["round"], "round")))

    async def executors(request: Request) -> Response:
        return JSONResponse(queries.executors(view))

    async def history(request: Request) -> Response:
        return JSONResponse({"history": queries.history(view), "evidence": queries.evidence(view)})

    async def executor_request(request: Request) -> Response:
        return JSONResponse(queries.executor_request(view, request.path_params["request"]))

    async def federation(request: Request) -> Response:
        return JSONResponse(queries.federation(view))

    async def certificates(request: Request) -> Response:
        return JSONResponse({"certificates": queries.certificates(view)})

    async def health(request: Request) -> Response:
        return JSONResponse({"alive": True, "node_id": view.node_id})

    async def ready(request: Request) -> Response:
        ok = view.ready()
        return JSONResponse({"ready": ok, "phase": view.phase()}, status_code=200 if ok else 503)

    async def metrics(request: Request) -> Response:
        view.refresh_gauges()
        return Response(view.metrics.render(), media_type=CONTENT_TYPE)

    async def openapi(request: Request) -> Response:
        return JSONResponse(openapi_spec(view.version))

    async def dag_page(request: Request) -> Response:
        return HTMLResponse(page)

    async def post_action(request: Request) -> Response:
        wait = bool_param(request.query_params.get("wait"), "wait")
        timeout = float_param(request.query_params.get("timeout"), "timeout", DEFAULT_WAIT_S, MAX_WAIT_S)
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > MAX_ENVELOPE_BYTES:
            raise PayloadTooLarge(f"an action is at most {MAX_ENVELOPE_BYTES} bytes", reason="too_large")
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_ENVELOPE_BYTES:
                raise PayloadTooLarge(f"an action is at most {MAX_ENVELOPE_BYTES} bytes", reason="too_large")
        if not body:
            raise BadRequest("the body must be the envelope's wire bytes", reason="malformed")
        carried = False
        try:
            action_id = view.submit_action(bytes(body))
        except ActionError as exc:
            return error(400, str(exc), reason=exc.reason.value)
        except ApiError:
            raise
        except InvalidInput as exc:  # the pool refused it (full, too large for an event): retry later
            raise Unavailable(str(exc), reason="refused") from exc
        if view.wait_carried is not None:
            with trio.move_on_after(CARRY_WAIT_S):
                await view.wait_carried(bytes(body))
                carried = True
            if not carried:
                return error(503, f"not yet in a stored event after {CARRY_WAIT_S:g} s; resend later",
                             action_id=action_id.hex(), reason="not_carried")
        if not wait:
            return JSONResponse({"action_id": action_id.hex()}, status_code=202)
        receipt = None
        with trio.move_on_after(timeout):
            receipt = await view.wait_receipt(action_id)
        if receipt is None:
            return error(504, f"no receipt within {timeout:g} s", action_id=action_id.hex(), reason="timeout")
        return JSONResponse(receipt)

    async def signals(websocket: WebSocket) -> None:
        member = websocket.query_params.get("member", "")
        if not 0 < len(member) <= MAX_MEMBER_CHARS:
            await websocket.close(code=1008, reason="member=<actor id> is required")
            return
        await websocket.accept()
        sub = view.signals.subscribe(member)
        try:
            await websocket.send_text(json.dumps({"subscribed": member, "queued": len(sub.backlog)}))
            for item in sub.backlog:
                await websocket.send_text(json.dumps(item))
            async with trio.open_nursery() as nursery:

                async def until_client_leaves() -> None:
                    try:
                        while True:
                            await websocket.receive_text()  # clients say nothing; this notices a close
                    except (WebSocketDisconnect, RuntimeError, KeyError):
                        pass
                    nursery.cancel_scope.cancel()

                nursery.start_soon(until_client_leaves)
                async for item in sub.receiver:
                    await websocket.send_text(json.dumps(item))
                # Cut off as too slow: close so the client reconnects and gets its member's queue.
                await websocket.close(code=1013, reason="too slow; reconnect")
                nursery.cancel_scope.cancel()
        except WebSocketDisconnect:
            pass
        finally:
            view.signals.unsubscribe(sub)

    async def on_api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        extra = {"reason": exc.reason} if exc.reason else {}
        return error(exc.status, exc.message, **extra)

    async def on_http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        message = "no such route" if exc.status_code == 404 else str(exc.detail)
        return error(exc.status_code, message)

    async def on_bug(request: Request, exc: Exception) -> Response:
        return error(500, f"internal error ({type(exc).__name__})")

    routes = [
        Route("/", dag_page),
        Route("/status", status),
        Route("/stats", stats),
        Route("/peers", peers),
        Route("/genesispeers", genesispeers),
        Route("/validators/{round}", validators),
        Route("/history", history),
        Route("/block/{index}", block),
        Route("/blocks/{start}", blocks),
        Route("/graph", graph),
        Route("/events/{hash}", events),
        Route("/rounds/{round}", rounds),
        Route("/executors", executors),
        Route("/executors/{request}", executor_request),
        Route("/federation", federation),
        Route("/certificates", certificates),
        Route("/health", health),
        Route("/ready", ready),
        Route("/metrics", metrics),
        Route("/openapi.json", openapi),
        Route("/actions", post_action, methods=["POST"]),
        WebSocketRoute("/signals", signals),
    ]
    app = Starlette(
        routes=routes,
        exception_handlers={ApiError: on_api_error, HTTPException: on_http_error, Exception: on_bug},
    )
    app.add_middleware(RequestCounter, view=view)
    return app
