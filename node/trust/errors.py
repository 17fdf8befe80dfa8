"""Errors of the trust layer: why a certificate was refused, by name.

Every refusal of a peer's certificate is a `CertificateRefused`; its subclasses name the reason so
the transport can turn them into the matching TLS alert and callers can tell them apart.
"""

from node.errors import InvalidInput, UsageError


class TrustError(InvalidInput):
    """A certificate, request or trust store that cannot be used."""


class CertificateRefused(TrustError):
    """A peer's certificate does not meet the policy."""

    reason = "refused"


class MissingCertificate(CertificateRefused):
    reason = "no certificate"


class MalformedCertificate(CertificateRefused):
    reason = "malformed certificate"


class ForeignCA(CertificateRefused):
    """The certificate does not chain to the CA we trust."""

    reason = "foreign CA"


class CertificateExpired(CertificateRefused):
    """Outside its validity period (expired, or not yet valid)."""

    reason = "expired"


class CertificateRevoked(CertificateRefused):
    reason = "revoked"


class WrongOrigin(CertificateRefused):
    """The certificate names another origin, or no origin at all."""

    reason = "wrong origin"


class KeyMismatch(CertificateRefused):
    """The node id named by the certificate is not the fingerprint of its key."""

    reason = "key mismatch"


class NotPinned(CertificateRefused):
    """A self-signed certificate whose key is not in the allowed set."""

    reason = "key not pinned"


class NotAMember(CertificateRefused):
    """A valid certificate of a node that is not in the membership."""

    reason = "not a member"


class BadRequest(TrustError):
    """A certificate signing request that cannot be honoured."""


class TrustUsageError(UsageError):
    """A trust primitive called with arguments that make no sense (e.g. a naive datetime)."""


class NotOnChain(CertificateRefused):
    """A CA-issued certificate that was not recorded on the chain within the grace period."""

    reason = "not on chain"


class RequestDenied(BadRequest):
    """The CA service refused a certificate request; `code` names why (sent on the wire)."""

    code = "denied"


class CsrForeignOrigin(RequestDenied):
    code = "wrong-origin"


class CsrKeyMismatch(RequestDenied):
    """The CSR's key is not the key the requester authenticated with in TLS."""

    code = "key-mismatch"


class WrongToken(RequestDenied):
    code = "wrong-token"


class TokenReused(RequestDenied):
    code = "token-reused"


class TokenExpired(RequestDenied):
    code = "token-expired"


class NotAuthorised(RequestDenied):
    """No token and the requester's key is not in the member list."""

    code = "not-authorised"


class RequesterRevoked(RequestDenied):
    code = "revoked"


class UntrustedCA(TrustError):
    """The CA answered with a certificate that is not the pinned CA (or an unusable certificate)."""


DENIALS: dict[str, type[RequestDenied]] = {
    cls.code: cls
    for cls in (
        RequestDenied,
        CsrForeignOrigin,
        CsrKeyMismatch,
        WrongToken,
        TokenReused,
        TokenExpired,
        NotAuthorised,
        RequesterRevoked,
    )
}
