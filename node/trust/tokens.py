"""One-time bootstrap tokens: random, stored only as hashes, single use, with an expiry.

Pure: the random source and `now` are passed in. The store is kept as a record (a map of token
hash -> expiry and use) that the CA directory persists, so a token file never holds a usable token.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass, field

from node.trust.errors import TokenExpired, TokenReused, TrustError, TrustUsageError, WrongToken

Random = Callable[[int], bytes]
TOKEN_PREFIX = "ntk_"
DEFAULT_TOKEN_TTL = dt.timedelta(hours=1)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _epoch(moment: dt.datetime) -> int:
    if moment.tzinfo is None:
        raise TrustUsageError("pass an aware datetime (UTC)")
    return int(moment.timestamp())


@dataclass
class _Entry:
    expires: int  # epoch seconds
    used: bool = False


@dataclass
class TokenStore:
    """Hashed one-time tokens. `issue` returns the only copy of a token; `redeem` uses it up."""

    entries: dict[str, _Entry] = field(default_factory=dict)

    def issue(self, rng: Random, now: dt.datetime, ttl: dt.timedelta = DEFAULT_TOKEN_TTL) -> str:
        if ttl <= dt.timedelta(0):
            raise TrustUsageError("a token lifetime must be positive")
        token = TOKEN_PREFIX + base64.b32encode(rng(20)).decode().rstrip("=").lower()
        self.entries[token_hash(token)] = _Entry(_epoch(now + ttl))
        return token

    def add_hash(self, digest: str, expires: dt.datetime) -> None:
        """Accept a token made elsewhere (passed in as its hash)."""
        self.entries[digest] = _Entry(_epoch(expires))

    def check(self, token: str, now: dt.datetime) -> str:
        """Raise unless `token` is known, unused and unexpired; return its hash (not yet used up)."""
        digest = token_hash(token)
        entry = next((e for d, e in self.entries.items() if hmac.compare_digest(d, digest)), None)
        if entry is None:
            raise WrongToken("the bootstrap token is not known to this CA")
        if entry.used:
            raise TokenReused("the bootstrap token was already used")
        if _epoch(now) >= entry.expires:
            raise TokenExpired(
                f"the bootstrap token expired at {dt.datetime.fromtimestamp(entry.expires, dt.UTC).isoformat()}"
            )
        return digest

    def use(self, digest: str) -> None:
        self.entries[digest].used = True

    def redeem(self, token: str, now: dt.datetime) -> None:
        self.use(self.check(token, now))

    def prune(self, now: dt.datetime, keep_used: dt.timedelta = dt.timedelta(days=7)) -> None:
        """Forget tokens past their expiry (used ones a while later, to keep saying 'reused')."""
        limit = _epoch(now)
        self.entries = {
            d: e
            for d, e in self.entries.items()
            if e.expires > limit or (e.used and e.expires + keep_used.total_seconds() > limit)
        }

    def to_record(self) -> dict[str, list[int]]:
        return {d: [e.expires, int(e.used)] for d, e in sorted(self.entries.items())}

    @staticmethod
    def from_record(record: object) -> TokenStore:
        if not isinstance(record, dict):
            raise TrustError("a token record must be a map")
        entries: dict[str, _Entry] = {}
        for digest, value in record.items():
            if (
                not isinstance(digest, str)
                or not isinstance(value, list)
                or len(value) != 2
                or not all(isinstance(v, int) for v in value)
            ):
                raise TrustError("a token entry must be hash -> [expires, used]")
            entries[digest] = _Entry(value[0], bool(value[1]))
        return TokenStore(entries)
