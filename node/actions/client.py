"""A client that builds, signs and sends actions to a node's `POST /actions`.

The only part of this package that does IO (HTTP through httpx).  The clock is injected: nonces
come from a counter seeded with it, so a client restarted later still picks nonces above the
ones it used before, without keeping a file.

HTTP contract with the API: `POST {node}/actions` with the envelope's wire bytes as the body
(`Content-Type: application/octet-stream`); with `?wait=true` the node answers once the action
is executed, with its receipt as JSON.  Errors are JSON `{"error": ...}` with status 4xx/5xx.
`GET {node}/status` gives the node's `origin` when the client was not told it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from node.actions.envelope import Envelope
from node.actions.errors import ClientError
from node.crypto import PrivateKey

DEFAULT_TTL_NS = 5 * 60 * 10**9


class ActionClient:
    def __init__(
        self,
        key: PrivateKey,
        node_url: str,
        *,
        clock: Callable[[], int],
        origin: str | None = None,
        ttl_ns: int = DEFAULT_TTL_NS,
        http: httpx.Client | None = None,
        timeout_s: float = 30.0,
    ) -> None:
        self.key = key
        self.node_url = node_url.rstrip("/")
        self._clock = clock
        self._origin = origin
        self.ttl_ns = ttl_ns
        self._http = http or httpx.Client(timeout=timeout_s)
        self._last_nonce = -1

    def next_nonce(self) -> int:
        """Strictly increasing, and above anything an earlier run used (the clock moved on)."""
        self._last_nonce = max(self._last_nonce + 1, self._clock())
        return self._last_nonce

    @property
    def origin(self) -> str:
        if self._origin is None:
            status = self._request("GET", "/status")
            origin = status.get("origin") if isinstance(status, dict) else None
            if not isinstance(origin, str):
                raise ClientError(f"{self.node_url}/status did not name an origin")
            self._origin = origin
        return self._origin

    def build(self, path: str, args: dict[str, Any] | None = None, *, target: str | None = None) -> Envelope:
        """A signed envelope for `path`, with the next nonce, expiring `ttl_ns` from now."""
        return Envelope.sign(
            self.key,
            origin=self.origin,
            path=path,
            args=args or {},
            nonce=self.next_nonce(),
            expiry_ns=self._clock() + self.ttl_ns,
            target=target,
        )

    def send(self, envelope: Envelope, *, wait: bool = False) -> Any:
        """Submit an envelope; returns the node's JSON answer (the receipt when `wait`)."""
        return self._request(
            "POST",
            "/actions",
            content=envelope.to_wire(),
            headers={"content-type": "application/octet-stream"},
            params={"wait": "true"} if wait else None,
        )

    def _request(self, method: str, route: str, **kwargs: Any) -> Any:
        url = self.node_url + route
        try:
            response = self._http.request(method, url, **kwargs)
        except httpx.HTTPError as exc:
            raise ClientError(f"cannot reach {url}: {exc}") from exc
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code >= 400:
            detail = body.get("error") if isinstance(body, dict) else response.text[:200]
            raise ClientError(f"{method} {url} refused ({response.status_code}): {detail}")
        return body

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ActionClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
