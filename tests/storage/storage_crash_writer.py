"""Child process of test_storage_crash: commits blocks in a loop until killed.

Block i writes 100 state keys `blk/{i}/{j}`, moves the single key `tmp/*` from i-1 to i (a
delete plus a put), sets `counter`, a receipt and a nonce.  After each commit returns it writes
i into the progress file: that is the "acknowledged" point the parent checks is never lost.
"""

import hashlib
import os
import sys

from node.storage.chain import ChainStore


def block_writes(i: int) -> dict[bytes, bytes | None]:
    writes: dict[bytes, bytes | None] = {b"blk/%08d/%03d" % (i, j): b"%d:%d" % (i, j) * 8 for j in range(100)}
    writes[b"tmp/%08d" % i] = b"%d" % i
    if i > 0:
        writes[b"tmp/%08d" % (i - 1)] = None
    writes[b"counter"] = b"%d" % i
    return writes


def state_hash(i: int) -> bytes:
    return hashlib.sha256(b"state %d" % i).digest()


def main() -> None:
    path, progress, sync = sys.argv[1], sys.argv[2], sys.argv[3] == "sync"
    chain = ChainStore.open(path, sync=sync)
    last = chain.last_applied()
    i = 0 if last is None else last.block_index + 1
    fd = os.open(progress, os.O_WRONLY | os.O_CREAT, 0o644)
    while True:
        chain.commit_block(
            i, b"block %d" % i, block_writes(i), {b"r%08d" % i: b"ok"}, state_hash(i), nonces={b"n%08d" % i: b""}
        )
        os.pwrite(fd, b"%-20d" % i, 0)  # fixed width: a reader never sees a mix of two numbers
        i += 1


if __name__ == "__main__":
    main()
