"""Keys, signatures and fingerprints.

Ed25519 is the default key type for nodes and users; verification goes through PyNaCl (libsodium),
about twice as fast here as `cryptography`, with identical signatures.  RSA-PSS (SHA-256) is
accepted for user actors whose organisations mandate RSA.  Every signature is over a domain tag
plus the message, so a signature made for one purpose can never be replayed as another.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import nacl.exceptions
import nacl.signing
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

from node.errors import ConfigError, InvalidInput

KeyType = Literal["ed25519", "rsa-pss"]
KEY_TYPES: tuple[KeyType, ...] = ("ed25519", "rsa-pss")


class CryptoError(InvalidInput):
    """A key or signature that cannot be used."""


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def fingerprint(public_key: bytes) -> str:
    """A node or actor id: the first 10 bytes of SHA-256 of the public key, in hex (20 chars)."""
    return hashlib.sha256(public_key).hexdigest()[:20]


def tagged(domain: bytes, message: bytes) -> bytes:
    """Domain separation: `len(domain) || domain || message`."""
    if len(domain) > 255:
        raise ValueError("domain tag too long")
    return bytes([len(domain)]) + domain + message


@dataclass(frozen=True)
class PrivateKey:
    """A signing key of either type; `public` is the wire form of its public key."""

    key_type: KeyType
    _ed: nacl.signing.SigningKey | None = None
    _rsa: rsa.RSAPrivateKey | None = None

    @staticmethod
    def generate(key_type: KeyType = "ed25519") -> PrivateKey:
        if key_type == "ed25519":
            return PrivateKey("ed25519", _ed=nacl.signing.SigningKey.generate())
        if key_type == "rsa-pss":
            return PrivateKey("rsa-pss", _rsa=rsa.generate_private_key(public_exponent=65537, key_size=2048))
        raise CryptoError(f"unknown key type {key_type!r}")

    @staticmethod
    def from_seed(seed: bytes) -> PrivateKey:
        """A deterministic Ed25519 key (simulations and tests)."""
        return PrivateKey("ed25519", _ed=nacl.signing.SigningKey(hashlib.sha256(seed).digest()))

    @property
    def public(self) -> bytes:
        if self._ed is not None:
            return bytes(self._ed.verify_key)
        assert self._rsa is not None
        return self._rsa.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.public)

    def sign(self, message: bytes) -> bytes:
        if self._ed is not None:
            return bytes(self._ed.sign(message).signature)
        assert self._rsa is not None
        return self._rsa.sign(
            message,
            padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32),
            hashes.SHA256(),
        )

    def to_cryptography(self) -> ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey:
        """The same key as a `cryptography` object (for X.509 certificates)."""
        if self._ed is not None:
            return ed25519.Ed25519PrivateKey.from_private_bytes(bytes(self._ed))
        assert self._rsa is not None
        return self._rsa

    def to_pem(self) -> bytes:
        return self.to_cryptography().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    @staticmethod
    def from_pem(data: bytes) -> PrivateKey:
        try:
            key = serialization.load_pem_private_key(data, password=None)
        except (ValueError, TypeError) as exc:
            raise CryptoError(f"not a usable private key: {exc}") from exc
        if isinstance(key, ed25519.Ed25519PrivateKey):
            raw = key.private_bytes(
                serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
            )
            return PrivateKey("ed25519", _ed=nacl.signing.SigningKey(raw))
        if isinstance(key, rsa.RSAPrivateKey):
            return PrivateKey("rsa-pss", _rsa=key)
        raise CryptoError(f"unsupported private key type {type(key).__name__}")


def verify(key_type: str, public_key: bytes, message: bytes, signature: bytes) -> bool:
    """True when `signature` is valid for `message` under `public_key`; never raises on bad input."""
    if key_type == "ed25519":
        if len(public_key) != 32 or len(signature) != 64:
            return False
        try:
            nacl.signing.VerifyKey(public_key).verify(message, signature)
            return True
        except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError, ValueError, TypeError):
            return False
    if key_type == "rsa-pss":
        try:
            key = serialization.load_der_public_key(public_key)
        except (ValueError, TypeError):
            return False
        if not isinstance(key, rsa.RSAPublicKey) or key.key_size < 2048:
            return False
        try:
            key.verify(
                signature,
                message,
                padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.AUTO),
                hashes.SHA256(),
            )
            return True
        except (InvalidSignature, ValueError, TypeError):
            return False
    return False


def write_private_key(path: Path, key: PrivateKey) -> None:
    """Write a key file at mode 0600, refusing to overwrite an existing one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as exc:
        raise ConfigError(f"key file {path} already exists; refusing to overwrite it") from exc
    with os.fdopen(fd, "wb") as fh:
        fh.write(key.to_pem())


def read_private_key(path: Path) -> PrivateKey:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read key file {path}: {exc.strerror}") from exc
    return PrivateKey.from_pem(data)
