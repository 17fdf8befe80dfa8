"""Trust: the origin CA, node certificates (self-signed and CA-issued), CSRs, revocation, verification.

The parts that use the transport (`node.trust.manager.TrustManager`, `node.trust.service.CaService`,
`node.trust.bootstrap`) are imported from their modules: node.transport itself imports this package.
"""

from node.trust.authority import CertificateAuthority
from node.trust.ca_dir import CaDirectory
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
from node.trust.schedule import Backoff, TrustDecisions
from node.trust.tokens import TokenStore
from node.trust.transparency import TransparencyRecord, certificate_fingerprint, check_on_chain
from node.trust.verify import NodeIdentity, RevocationSet, identity_of, verify_issued, verify_pinned

__all__ = [
    "Backoff",
    "CaDirectory",
    "CertificateAuthority",
    "TokenStore",
    "TransparencyRecord",
    "TrustDecisions",
    "certificate_fingerprint",
    "check_on_chain",
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
