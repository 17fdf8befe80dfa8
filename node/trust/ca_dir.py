"""The origin CA's directory: `ca.key` (0600), `ca.crt`, and its state as JSON files.

`issued.json` (serial -> node id and validity, so serials stay unique and `revoke --node` knows
them), `revoked.json` (the revocation list, `RevocationSet.to_record`), `tokens.json` (hashed
one-time tokens). Writes go through a temporary file and a rename, so a crash never leaves half a file.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from typing import Any

from node.errors import ConfigError
from node.fileutil import write_atomically
from node.trust.authority import CertificateAuthority, IssuedEntry
from node.trust.certs import DEFAULT_CA_LIFETIME, OriginCA
from node.trust.errors import TrustError
from node.trust.tokens import Random, TokenStore
from node.trust.verify import RevocationSet


class CaDirectory:
    def __init__(self, path: Path) -> None:
        self.path = path

    key_file = property(lambda self: self.path / "ca.key")
    cert_file = property(lambda self: self.path / "ca.crt")
    issued_file = property(lambda self: self.path / "issued.json")
    revoked_file = property(lambda self: self.path / "revoked.json")
    tokens_file = property(lambda self: self.path / "tokens.json")

    def create(self, origin: str, now: dt.datetime, lifetime: dt.timedelta = DEFAULT_CA_LIFETIME) -> OriginCA:
        """A new CA; refuses to touch a directory that already holds a CA key."""
        if self.key_file.exists():
            raise ConfigError(f"{self.key_file} exists; refusing to replace a CA key")
        ca = OriginCA.generate(origin, now, lifetime)
        self.path.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(ca.key_pem())
        self.cert_file.write_bytes(ca.certificate_pem())
        return ca

    def load_ca(self) -> OriginCA:
        try:
            key_pem, cert_pem = self.key_file.read_bytes(), self.cert_file.read_bytes()
        except OSError as exc:
            raise ConfigError(f"{self.path} is not a CA directory: cannot read {exc.filename}: {exc.strerror}") from exc
        try:
            return OriginCA.from_pem(key_pem, cert_pem)
        except TrustError as exc:
            raise ConfigError(f"{self.path}: {exc}") from exc

    def _read_json(self, path: Path, default: Any) -> Any:
        if not path.exists():
            return default
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read {path}: {exc}") from exc

    def _write_json(self, path: Path, value: Any) -> None:
        write_atomically(path, (json.dumps(value, indent=1, sort_keys=True) + "\n").encode(), mode=0o600)

    def load_revoked(self) -> RevocationSet:
        try:
            return RevocationSet.from_record(self._read_json(self.revoked_file, {}))
        except TrustError as exc:
            raise ConfigError(f"{self.revoked_file}: {exc}") from exc

    def load_issued(self) -> dict[int, IssuedEntry]:
        raw = self._read_json(self.issued_file, {})
        try:
            return {int(s): IssuedEntry(str(e[0]), int(e[1]), int(e[2])) for s, e in raw.items()}
        except (AttributeError, TypeError, ValueError, IndexError) as exc:
            raise ConfigError(f"{self.issued_file}: entries are serial -> [node id, not_before, not_after]") from exc

    def load_tokens(self) -> TokenStore:
        try:
            return TokenStore.from_record(self._read_json(self.tokens_file, {}))
        except TrustError as exc:
            raise ConfigError(f"{self.tokens_file}: {exc}") from exc

    def authority(self, rng: Random, **options: Any) -> CertificateAuthority:
        """The CA with its saved state; every later change is saved back (`on_change`)."""
        authority = CertificateAuthority(
            self.load_ca(),
            rng=rng,
            tokens=self.load_tokens(),
            revoked=self.load_revoked(),
            issued=self.load_issued(),
            **options,
        )
        authority.on_change = lambda: self.save(authority)
        return authority

    def save(self, authority: CertificateAuthority) -> None:
        self._write_json(
            self.issued_file, {str(s): [e.node_id, e.not_before, e.not_after] for s, e in authority.issued.items()}
        )
        self._write_json(self.revoked_file, authority.revoked.to_record())
        self._write_json(self.tokens_file, authority.tokens.to_record())
