"""kill -9 a process committing blocks at random points; every reopen must find whole blocks only.

The child (storage_crash_writer.py) reports each acknowledged commit in a progress file.  We
wait until it has acknowledged a random number of further blocks, let it run a random extra
0-4 ms (so the kill lands inside a commit, between commits, during fsync...), kill it with
SIGKILL, reopen the store and check: no acknowledged block is lost, every block up to the
marker is complete (all 100 keys, its delete, receipt, nonce, hash), nothing of the next block
exists, and the marker cannot be re-applied.  The next round resumes on the same directory.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from node.storage.chain import ChainStore
from node.storage.errors import AlreadyApplied
from node.storage.keys import Space

WRITER = Path(__file__).with_name("storage_crash_writer.py")
KILL_POINTS = 24


def _read_progress(path: Path) -> int | None:
    try:
        text = path.read_bytes().strip()
        return int(text) if text else None
    except (FileNotFoundError, ValueError):
        return None


def _wait_for_progress(child: subprocess.Popen[bytes], progress: Path, target: int) -> int:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        seen = _read_progress(progress)
        if seen is not None and seen >= target:
            return seen
        if child.poll() is not None:
            raise AssertionError(f"writer exited early with {child.returncode}")
        time.sleep(0.0005)
    raise AssertionError(f"writer did not reach block {target} in time")


def _check_store(path: Path, acknowledged: int) -> int:
    sys.path.insert(0, str(WRITER.parent))
    try:
        from storage_crash_writer import state_hash
    finally:
        sys.path.pop(0)
    with ChainStore.open(path) as chain:
        last = chain.last_applied()
        assert last is not None
        top = last.block_index
        assert top >= acknowledged, f"lost acknowledged blocks: marker {top} < acknowledged {acknowledged}"
        assert last.state_hash == state_hash(top)
        per_block = Counter(int(key[4:12]) for key, _ in chain.state.iterate(b"blk/"))
        assert per_block == dict.fromkeys(range(top + 1), 100), "a block's state is partial or extra"
        assert chain.get_state(b"blk/%08d/%03d" % (top, 99)) == b"%d:%d" % (top, 99) * 8
        assert [k for k, _ in chain.state.iterate(b"tmp/")] == [b"tmp/%08d" % top]
        assert chain.get_state(b"counter") == b"%d" % top
        assert chain.last_block_index() == top and chain.get_block(top) == b"block %d" % top
        assert len(chain.blocks(0, top + 5)) == top + 1
        assert all(chain.state_hash_at(i) == state_hash(i) for i in range(top + 1))
        assert sum(1 for _ in chain.kv.iterate(Space.RECEIPTS)) == top + 1
        assert sum(1 for _ in chain.kv.iterate(Space.NONCES)) == top + 1
        with pytest.raises(AlreadyApplied):
            chain.commit_block(top, b"again", {b"counter": b"bad"}, {}, b"")
        return top


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["sync", "nosync"])
def test_kill_9_during_block_commits_never_tears_a_block(tmp_path, mode):
    rng = random.Random(f"storage-crash-{mode}")
    db, progress = tmp_path / "chain", tmp_path / "progress"
    top = -1
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    for _ in range(KILL_POINTS // 2 if mode == "nosync" else KILL_POINTS):
        progress.unlink(missing_ok=True)
        child = subprocess.Popen([sys.executable, str(WRITER), str(db), str(progress), mode], env=env)
        try:
            acknowledged = _wait_for_progress(child, progress, top + rng.randint(1, 6))
            extra = time.monotonic() + rng.uniform(0, 0.004)
            while time.monotonic() < extra:
                pass
            acknowledged = max(acknowledged, _read_progress(progress) or acknowledged)
            os.kill(child.pid, signal.SIGKILL)
        finally:
            child.kill()
            child.wait()
        assert child.returncode == -signal.SIGKILL
        new_top = _check_store(db, acknowledged)
        assert new_top > top
        top = new_top
