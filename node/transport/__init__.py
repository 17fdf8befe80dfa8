"""QUIC transport with mutual TLS: framed request/response between authenticated nodes."""

from node.transport.connection import CloseCode, Limits
from node.transport.endpoint import Endpoint, Handler
from node.transport.errors import (
    BindFailed,
    ConnectionLost,
    EndpointNotRunning,
    FrameTooLarge,
    MalformedFrame,
    PeerMisbehaved,
    PeerRefused,
    PeerUnreachable,
    RemoteError,
    RequestTimeout,
    TransportError,
)
from node.transport.framing import MAX_FRAME
from node.transport.mtls import ALPN, AnyOf, IssuedByCA, PeerAuthenticator, PeerInfo, PinnedKeys, TlsIdentity

__all__ = [
    "ALPN",
    "MAX_FRAME",
    "AnyOf",
    "BindFailed",
    "CloseCode",
    "ConnectionLost",
    "Endpoint",
    "EndpointNotRunning",
    "FrameTooLarge",
    "Handler",
    "IssuedByCA",
    "Limits",
    "MalformedFrame",
    "PeerAuthenticator",
    "PeerInfo",
    "PeerMisbehaved",
    "PeerRefused",
    "PeerUnreachable",
    "PinnedKeys",
    "RemoteError",
    "RequestTimeout",
    "TlsIdentity",
    "TransportError",
]
