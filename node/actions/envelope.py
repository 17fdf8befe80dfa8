"""Signed action envelopes.

An envelope says: the actor holding `actor_key` asks origin `origin` to run `path` with `args`,
once (`nonce`), before `expiry_ns`.  The signature covers the canonical encoding of every field
but itself, behind the domain tag `node/action/v1`, so it cannot be replayed as another kind of
signed message.  `action_id` hashes the signed body, never the signature (RSA-PSS signatures
differ on every signing, so a replayed action may carry new signature bytes).

Wire form: `pack({"body": <canonical body bytes>, "sig": <signature>})`.  Decoding refuses a
body that is not canonical, so one action has exactly one body and one id.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from node import codec
from node.actions.errors import EnvelopeError, Reason
from node.crypto import KEY_TYPES, KeyType, PrivateKey, fingerprint, sha256, tagged, verify

SIGN_DOMAIN = b"node/action/v1"
MAX_ENVELOPE_BYTES = 64 * 1024
MAX_INT = 2**63 - 1  # nonces and expiries fit a signed 64-bit integer everywhere
MAX_PATH_CHARS = 128
MAX_ORIGIN_CHARS = 253  # a DNS name
_BODY_FIELDS = frozenset({"v", "origin", "path", "args", "actor_key", "key_type", "nonce", "expiry_ns", "target"})

JSONValue = None | bool | int | str | list["JSONValue"] | dict[str, "JSONValue"]


def check_json_like(value: Any, where: str = "args", depth: int = 0) -> None:
    """Refuse anything but None, bool, int, str, lists and str-keyed maps (no floats, no bytes)."""
    if depth > codec.MAX_DEPTH - 2:
        raise EnvelopeError(Reason.MALFORMED, f"{where} nested too deep")
    if value is None or isinstance(value, (bool, str)):
        return
    if isinstance(value, int):
        if not -(2**63) <= value <= 2**64 - 1:
            raise EnvelopeError(Reason.MALFORMED, f"{where}: integer out of range")
        return
    if isinstance(value, list):
        for i, item in enumerate(value):
            check_json_like(item, f"{where}[{i}]", depth + 1)
        return
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                raise EnvelopeError(Reason.MALFORMED, f"{where}: map keys must be strings")
            check_json_like(v, f"{where}.{k}", depth + 1)
        return
    raise EnvelopeError(Reason.MALFORMED, f"{where}: a {type(value).__name__} is not JSON-like (floats are refused)")


def _check_int(name: str, value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_INT:
        raise EnvelopeError(Reason.MALFORMED, f"{name} must be an integer in [0, 2**63)")
    return value


def _check_str(name: str, value: Any, limit: int) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= limit:
        raise EnvelopeError(Reason.MALFORMED, f"{name} must be a string of 1..{limit} characters")
    return value


@dataclass(frozen=True)
class Envelope:
    """One signed action.  Build with `Envelope.sign`, parse with `Envelope.from_wire`."""

    origin: str
    path: str
    args: dict[str, Any]
    actor_key: bytes
    key_type: KeyType
    nonce: int
    expiry_ns: int
    target: str | None = None
    signature: bytes = b""
    # Derived once: the canonical body bytes (what is signed and hashed).
    body: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _check_str("origin", self.origin, MAX_ORIGIN_CHARS)
        _check_str("path", self.path, MAX_PATH_CHARS)
        if not self.path.startswith("/"):
            raise EnvelopeError(Reason.MALFORMED, "path must start with '/'")
        if not isinstance(self.args, dict):
            raise EnvelopeError(Reason.MALFORMED, "args must be a map")
        check_json_like(self.args)
        if not isinstance(self.actor_key, bytes) or not 0 < len(self.actor_key) <= 1024:
            raise EnvelopeError(Reason.MALFORMED, "actor_key must be 1..1024 bytes")
        if self.key_type not in KEY_TYPES:
            raise EnvelopeError(Reason.MALFORMED, f"key_type must be one of {', '.join(KEY_TYPES)}")
        _check_int("nonce", self.nonce)
        _check_int("expiry_ns", self.expiry_ns)
        if self.target is not None:
            _check_str("target", self.target, MAX_ORIGIN_CHARS)
        if not isinstance(self.signature, bytes):
            raise EnvelopeError(Reason.MALFORMED, "signature must be bytes")
        object.__setattr__(self, "body", codec.pack(self._body_map()))

    def __hash__(self) -> int:  # args is a dict, so the generated hash would fail
        return hash((self.body, self.signature))

    def _body_map(self) -> dict[str, Any]:
        return {
            "v": 1,
            "origin": self.origin,
            "path": self.path,
            "args": self.args,
            "actor_key": self.actor_key,
            "key_type": self.key_type,
            "nonce": self.nonce,
            "expiry_ns": self.expiry_ns,
            "target": self.target,
        }

    @property
    def action_id(self) -> bytes:
        """SHA-256 of the signed body (stable across re-signing with RSA-PSS)."""
        return sha256(self.body)

    @property
    def actor_fingerprint(self) -> str:
        return fingerprint(self.actor_key)

    @property
    def destination(self) -> str:
        """The origin whose chain should execute this action."""
        return self.target if self.target is not None else self.origin

    def signed_message(self) -> bytes:
        return tagged(SIGN_DOMAIN, self.body)

    def verify_signature(self) -> bool:
        return verify(self.key_type, self.actor_key, self.signed_message(), self.signature)

    @staticmethod
    def sign(
        key: PrivateKey,
        *,
        origin: str,
        path: str,
        args: dict[str, Any] | None = None,
        nonce: int,
        expiry_ns: int,
        target: str | None = None,
    ) -> Envelope:
        """Build and sign an envelope; raises `EnvelopeError` if it is malformed or too large."""
        unsigned = Envelope(origin, path, dict(args or {}), key.public, key.key_type, nonce, expiry_ns, target)
        signed = Envelope(
            origin, path, unsigned.args, key.public, key.key_type, nonce, expiry_ns, target,
            signature=key.sign(unsigned.signed_message()),
        )
        signed.to_wire()  # refuses an oversized envelope at the signer, not at the node
        return signed

    def to_wire(self) -> bytes:
        data = codec.pack({"body": self.body, "sig": self.signature})
        if len(data) > MAX_ENVELOPE_BYTES:
            raise EnvelopeError(Reason.TOO_LARGE, f"{len(data)} bytes exceeds {MAX_ENVELOPE_BYTES}")
        return data

    @staticmethod
    def from_wire(data: bytes) -> Envelope:
        """Parse (not verify) an envelope; every failure is an `EnvelopeError` with its reason."""
        if not isinstance(data, (bytes, bytearray)):
            raise EnvelopeError(Reason.MALFORMED, "envelope must be bytes")
        if len(data) > MAX_ENVELOPE_BYTES:
            raise EnvelopeError(Reason.TOO_LARGE, f"{len(data)} bytes exceeds {MAX_ENVELOPE_BYTES}")
        try:
            outer = codec.unpack(bytes(data), max_bytes=MAX_ENVELOPE_BYTES)
        except codec.DecodeError as exc:
            raise EnvelopeError(Reason.MALFORMED, str(exc)) from exc
        if not isinstance(outer, dict) or set(outer) != {"body", "sig"}:
            raise EnvelopeError(Reason.MALFORMED, "envelope must be a map of body and sig")
        body, sig = outer["body"], outer["sig"]
        if not isinstance(body, bytes) or not isinstance(sig, bytes):
            raise EnvelopeError(Reason.MALFORMED, "body and sig must be bytes")
        try:
            fields = codec.unpack(body, max_bytes=MAX_ENVELOPE_BYTES)
        except codec.DecodeError as exc:
            raise EnvelopeError(Reason.MALFORMED, f"body: {exc}") from exc
        if not isinstance(fields, dict) or set(fields) != _BODY_FIELDS:
            raise EnvelopeError(Reason.MALFORMED, "body has missing or unknown fields")
        if fields["v"] != 1:
            raise EnvelopeError(Reason.MALFORMED, f"unsupported envelope version {fields['v']!r}")
        envelope = Envelope(
            fields["origin"], fields["path"], fields["args"], fields["actor_key"], fields["key_type"],
            fields["nonce"], fields["expiry_ns"], fields["target"], signature=sig,
        )
        if envelope.body != body:
            raise EnvelopeError(Reason.MALFORMED, "body is not in canonical form")
        return envelope
