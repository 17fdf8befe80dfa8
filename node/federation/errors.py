"""Errors of federation: resolving other origins, their messages, their proofs, request tracking.

`ResolutionError` and its subclasses say why an origin could not be located or trusted;
`FederationDecodeError` and `ProofError` are what another origin's bytes did wrong (protocol
violations); `TrackerRefusal` names why the request tracker would not take a response or request.
"""

from node.errors import InvalidInput, NodeError, ProtocolViolation, UsageError


class FederationError(NodeError):
    """Root of the federation layer's errors."""


class FederationUsageError(FederationError, UsageError):
    """We misused the federation API."""


# -- resolution ------------------------------------------------------------------------------------


class ResolutionError(FederationError, InvalidInput):
    """An origin could not be resolved; `origin` names it and `reasons` lists what each source said."""

    def __init__(self, origin: str, reasons: list[str]) -> None:
        self.origin = origin
        self.reasons = list(reasons)
        super().__init__(f"cannot resolve origin {origin!r}: " + "; ".join(reasons or ["no source"]))


class OriginNotFound(ResolutionError):
    """No source knows the origin (NXDOMAIN or no SRV records, and no static entry)."""


class ResolverUnavailable(ResolutionError):
    """DNS failed (timeouts, no usable nameserver) after the retries, and no static entry helped."""


class IncompatibleOrigin(ResolutionError):
    """The origin publishes protocol versions, none of which we speak."""


class UntrustedPin(ResolutionError):
    """The origin's CA pin from DNS matches no fingerprint configured for it (DNSSEC is not validated)."""


# -- messages and proofs -----------------------------------------------------------------------------


class FederationDecodeError(FederationError, ProtocolViolation):
    """Bytes from another origin that are not a valid, bounded federation message."""


class ProofError(FederationError, ProtocolViolation):
    """A block proof that does not prove anything: too few valid signatures, wrong block, unknown peers."""


# -- request tracking -------------------------------------------------------------------------------


class TrackerRefusal(FederationError, InvalidInput):
    """The request tracker refused a message; the subclass names why."""


class UnknownOrigin(TrackerRefusal):
    """A message from an origin we have no peer set for."""


class UnknownRequest(TrackerRefusal):
    """A response for a request id we never sent (or already forgot)."""


class ConflictingRequest(TrackerRefusal):
    """A request id reused with different content."""


class MismatchedMessage(TrackerRefusal):
    """A message whose fields contradict each other or the request it answers."""


class OriginUnreachable(FederationError):
    """No endpoint of the origin answered; `reasons` says what each one did."""

    def __init__(self, origin: str, reasons: list[str]) -> None:
        self.origin = origin
        self.reasons = list(reasons)
        super().__init__(f"no node of origin {origin!r} answered: " + "; ".join(reasons or ["no endpoint"]))


class ZoneUnavailable(FederationError):
    """Our origin's DNS records are not known yet (too few of our nodes published their endpoint)."""
