"""Errors of the QUIC transport.

`PeerUnreachable` (no usable connection, or no answer in time) and `PeerRefused` (the TLS policy of
either side said no) are what a caller of `Endpoint.request` handles; `ProtocolViolation`
subclasses name what a peer did wrong on the wire.
"""

from node.errors import ConfigError, NodeError, ProtocolViolation, UsageError


class TransportError(NodeError):
    """Root of the transport's errors."""


class PeerUnreachable(TransportError):
    """No connection to the peer could be made or kept."""


class RequestTimeout(PeerUnreachable):
    """The peer did not answer within the request's deadline."""


class ConnectionLost(PeerUnreachable):
    """The connection closed while a request was waiting for its response."""


class PeerRefused(TransportError):
    """The peer was refused by our policy (or refused us), with the reason."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class RemoteError(TransportError):
    """The peer received the request but its handler failed; `reason` is what it said."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class FrameTooLarge(ProtocolViolation):
    """A frame above the size limit (sent by a peer, or asked of us by a caller)."""


class MalformedFrame(ProtocolViolation):
    """Bytes on a stream that are not one well-formed frame."""


class PeerMisbehaved(ProtocolViolation):
    """A peer broke the stream protocol in some other way (unexpected stream, flooding)."""


class BindFailed(TransportError, ConfigError):
    """The endpoint's UDP address cannot be bound (in use, not local, not permitted)."""


class EndpointNotRunning(UsageError):
    """The endpoint is not running (call `run` through `nursery.start` first)."""
