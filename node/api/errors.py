"""Errors of the API layer: each one is an HTTP status with a JSON body `{"error": ...}`."""

from __future__ import annotations

from node.errors import ConfigError, InvalidInput, UsageError


class ApiError(InvalidInput):
    """A request the API refuses; `status` is the HTTP status, `reason` an optional stable code."""

    status = 400

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason


class BadRequest(ApiError):
    status = 400


class NotFound(ApiError):
    status = 404


class Unavailable(ApiError):
    """The node cannot serve this now (no consensus yet, pool full): retry later."""

    status = 503


class PayloadTooLarge(ApiError):
    status = 413


class ApiBindError(ConfigError):
    """The API address cannot be bound (in use, not local, no permission)."""


class ApiUsageError(UsageError):
    """The API was misconfigured by its caller (bad bind address)."""
