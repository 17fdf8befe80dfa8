"""Fixtures for the actions tests: actors of both key types and a dict-backed chain."""

from __future__ import annotations

from typing import Any

import pytest

from node.actions import BUILTIN, BlockContext, BlockResult, Envelope, Registry, execute_block
from node.crypto import PrivateKey

ORIGIN = "alpha.example"
T0 = 1_700_000_000 * 10**9
SECOND = 10**9


class Actor:
    """A key plus a nonce counter; builds signed envelopes."""

    def __init__(self, key: PrivateKey, origin: str = ORIGIN) -> None:
        self.key = key
        self.origin = origin
        self.nonce = 0

    @property
    def id(self) -> str:
        return self.key.fingerprint

    def env(self, path: str, args: dict[str, Any] | None = None, *, nonce: int | None = None,
            expiry_ns: int | None = None, origin: str | None = None, target: str | None = None) -> Envelope:
        if nonce is None:
            self.nonce += 1
            nonce = self.nonce
        return Envelope.sign(self.key, origin=origin or self.origin, path=path, args=args or {}, nonce=nonce,
                             expiry_ns=T0 + 3600 * SECOND if expiry_ns is None else expiry_ns, target=target)

    def tx(self, path: str, args: dict[str, Any] | None = None, **kw: Any) -> bytes:
        return self.env(path, args, **kw).to_wire()


class Chain:
    """A dict state and a block counter; applies each block's writes like storage would."""

    def __init__(self, origin: str = ORIGIN, registry: Registry = BUILTIN) -> None:
        self.state: dict[bytes, bytes] = {}
        self.origin = origin
        self.registry = registry
        self.index = 0
        self.ts = T0
        self.results: list[BlockResult] = []

    def run(self, *txs: bytes, committee: tuple[bytes, ...] = (), ts: int | None = None,
            timeout_ns: int = 30 * SECOND) -> BlockResult:
        self.ts = self.ts + SECOND if ts is None else ts
        ctx = BlockContext(self.index, self.ts, self.origin, committee, timeout_ns)
        result = execute_block(self.state, list(txs), ctx, self.registry)
        result.apply_to(self.state)
        self.index += 1
        self.results.append(result)
        return result

    def one(self, tx: bytes, **kw: Any) -> Any:
        """Run a one-transaction block; return its receipt."""
        return self.run(tx, **kw).receipts[0]

    def data(self) -> dict[bytes, bytes]:
        """The state without the per-block bookkeeping keys."""
        return {k: v for k, v in self.state.items() if not k.startswith(b"meta/")}


@pytest.fixture(scope="session")
def rsa_keys() -> list[PrivateKey]:
    return [PrivateKey.generate("rsa-pss") for _ in range(3)]


@pytest.fixture(params=["ed25519", "rsa-pss"])
def key_type(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_actor(key_type: str, rsa_keys: list[PrivateKey]):
    """Actors of the parametrized key type (RSA keys are pre-generated: generation is slow)."""
    made = {"n": 0}

    def make() -> Actor:
        made["n"] += 1
        if key_type == "rsa-pss" and made["n"] <= len(rsa_keys):
            return Actor(rsa_keys[made["n"] - 1])
        return Actor(PrivateKey.generate("ed25519"))

    return make


@pytest.fixture
def chain() -> Chain:
    return Chain()
