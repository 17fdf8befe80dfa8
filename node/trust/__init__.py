"""Trust: the origin CA, node certificates (self-signed and CA-issued), CSRs, revocation, verification."""

from node.trust.certs import (
    DEFAULT_ISSUED_LIFETIME,
    OriginCA,
    certificate_pem,
    csr_pem,
    load_certificate,
    load_csr,
    make_csr,
    node_id_of_key,
    node_uri,
    self_signed_identity,
)
from node.trust.verify import NodeIdentity, RevocationSet, identity_of, verify_issued, verify_pinned

__all__ = [
    "DEFAULT_ISSUED_LIFETIME",
    "NodeIdentity",
    "OriginCA",
    "RevocationSet",
    "certificate_pem",
    "csr_pem",
    "identity_of",
    "load_certificate",
    "load_csr",
    "make_csr",
    "node_id_of_key",
    "node_uri",
    "self_signed_identity",
    "verify_issued",
    "verify_pinned",
]
