"""Benchmark of the actions core: envelope verification and block execution (one process, no network).

Prints envelope decode+verify per second for both key types, next to the machine's ceiling
(bare signature verification of the same message), and execute_block actions per second for a
realistic mix (signals posted to a point, joins), including signature checks.

    python bench/actions_core.py [--actions N]
"""

from __future__ import annotations

import argparse
import time

from node.actions import BlockContext, Envelope, execute_block
from node.crypto import PrivateKey, verify

ORIGIN = "bench.example"
T0 = 1_700_000_000 * 10**9


def rate(fn, items) -> float:
    start = time.perf_counter()
    for item in items:
        fn(item)
    return len(items) / (time.perf_counter() - start)


def bench_verify(key_type: str, n: int) -> float:
    key = PrivateKey.generate(key_type)  # type: ignore[arg-type]
    envs = [Envelope.sign(key, origin=ORIGIN, path="/signals/post", args={"point": "p", "body": {"i": i}},
                          nonce=i, expiry_ns=T0) for i in range(n)]
    wires = [e.to_wire() for e in envs]

    def full(wire: bytes) -> None:
        assert Envelope.from_wire(wire).verify_signature()

    def bare(env: Envelope) -> None:
        assert verify(env.key_type, env.actor_key, env.signed_message(), env.signature)

    ceiling = rate(bare, envs)
    ours = rate(full, wires)
    print(f"{key_type:8s} envelope decode+verify: {ours:9.0f}/s   bare verify ceiling: {ceiling:9.0f}/s   "
          f"ratio {ours / ceiling:.2f}   wire size {len(wires[0])} B")
    return ceiling


def bench_execute(n_actions: int, per_block: int, ceiling: float) -> None:
    users = [PrivateKey.from_seed(f"u{i}".encode()) for i in range(20)]
    setup = [Envelope.sign(u, origin=ORIGIN, path="/users/create", args={"name": f"u{i}"}, nonce=1,
                           expiry_ns=T0 + 10**15).to_wire() for i, u in enumerate(users)]
    setup.append(Envelope.sign(users[0], origin=ORIGIN, path="/points/create", args={"point": "p"}, nonce=2,
                               expiry_ns=T0 + 10**15).to_wire())
    setup += [Envelope.sign(u, origin=ORIGIN, path="/points/join", args={"point": "p"}, nonce=2,
                            expiry_ns=T0 + 10**15).to_wire() for u in users[1:]]
    state: dict[bytes, bytes] = {}

    def apply(txs: list[bytes], index: int) -> int:
        result = execute_block(state, txs, BlockContext(index, T0 + index, ORIGIN))
        for k, v in result.writes.items():
            if v is None:
                state.pop(k, None)
            else:
                state[k] = v
        return sum(r.ok for r in result.receipts)

    assert apply(setup, 0) == len(setup)
    txs = [Envelope.sign(users[i % 20], origin=ORIGIN, path="/signals/post",
                         args={"point": "p", "body": {"n": i}}, nonce=3 + i // 20, expiry_ns=T0 + 10**15).to_wire()
           for i in range(n_actions)]
    blocks = [txs[i:i + per_block] for i in range(0, n_actions, per_block)]
    start = time.perf_counter()
    ok = sum(apply(block, 1 + b) for b, block in enumerate(blocks))
    elapsed = time.perf_counter() - start
    assert ok == n_actions, ok
    print(f"execute_block (ed25519 signals/post, {per_block}/block): {n_actions / elapsed:9.0f} actions/s "
          f"({len(blocks)} blocks, {elapsed * 1000 / len(blocks):.1f} ms/block; "
          f"ratio to bare ed25519 verify {n_actions / elapsed / ceiling:.2f})")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--actions", type=int, default=5000)
    args = parser.parse_args()
    ceiling = bench_verify("ed25519", 3000)
    bench_verify("rsa-pss", 1000)
    bench_execute(args.actions, 500, ceiling)


if __name__ == "__main__":
    main()
