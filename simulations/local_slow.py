"""A slow node: cap one node process's CPU for a while, by the best means this machine offers.

In order of preference:
1. cgroup v2 `cpu.max` (a child group of the unified hierarchy that has the cpu controller);
2. cgroup v1 `cpu.cfs_quota_us` / `cpu.cfs_period_us` (the `cpu` hierarchy).  Inside `ip netns
   exec` (partition and loss runs) /sys is a fresh sysfs without cgroups: the v1 `cpu` hierarchy is
   then mounted on a temporary directory, visible only in that private mount namespace;
3. without root or cgroups: a SIGSTOP/SIGCONT duty cycle (runs `share` of every period).
`CpuThrottle.method` says which one was used; the report records it.  The group is removed and
the process moved back where it was when the throttle ends, also when the run is cancelled.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import subprocess
import tempfile
from pathlib import Path

import trio

from simulations.local_netns import NETNS_ENV

CGROUP_ROOT = Path("/sys/fs/cgroup")
PERIOD_US = 100_000
DUTY_PERIOD_S = 0.5
DUTY_CYCLE = "SIGSTOP/SIGCONT duty cycle"


def _v2_root() -> Path | None:
    for root in (CGROUP_ROOT, CGROUP_ROOT / "unified"):
        controllers = root / "cgroup.controllers"
        try:
            if "cpu" in controllers.read_text().split():
                return root
        except OSError:
            continue
    return None


_MOUNTED: list[Path] = []  # the cpu hierarchy mounted by this process (inside `ip netns exec` only)


def _mount_v1_cpu() -> Path | None:
    """Mount the v1 `cpu` hierarchy where `ip netns exec` hid it (its mounts stay in its namespace)."""
    if _MOUNTED:
        return _MOUNTED[0]
    if os.geteuid() != 0 or not os.environ.get(NETNS_ENV):
        return None  # outside our namespace a mount would be the host's: never
    where = Path(tempfile.mkdtemp(prefix="nodesim-cgroup-"))
    done = subprocess.run(["mount", "-t", "cgroup", "-o", "cpu", "nodesim", str(where)], capture_output=True,
                          timeout=30)
    if done.returncode != 0 or not (where / "cpu.cfs_quota_us").exists():
        subprocess.run(["umount", str(where)], capture_output=True, timeout=30)
        where.rmdir()
        return None
    _MOUNTED.append(where)
    atexit.register(_unmount)
    return where


def _unmount() -> None:
    for where in _MOUNTED:
        subprocess.run(["umount", str(where)], capture_output=True, timeout=30)
        with contextlib.suppress(OSError):
            where.rmdir()
    _MOUNTED.clear()


def _v1_root() -> Path | None:
    root = CGROUP_ROOT / "cpu"
    return root if (root / "cpu.cfs_quota_us").exists() else _mount_v1_cpu()


def available_method() -> str:
    if os.geteuid() == 0:
        if _v2_root() is not None:
            return "cgroup2 cpu.max"
        if _v1_root() is not None:
            return "cgroup1 cpu.cfs_quota_us"
    return DUTY_CYCLE


def _cgroup_of(pid: int, controller: str) -> str:
    """The pid's group path in the hierarchy with `controller` ("" for the v2 unified one)."""
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, names, path = line.split(":", 2)
        if (controller and controller in names.split(",")) or (not controller and names == ""):
            return path
    return "/"


class CpuThrottle:
    """`async with CpuThrottle(pid, share=0.1):` runs `pid` at `share` of one CPU inside the block."""

    def __init__(self, pid: int, share: float, name: str = "nodesim-slow") -> None:
        if not 0 < share < 1:
            raise ValueError(f"CPU share {share} is not between 0 and 1")
        self.pid = pid
        self.share = share
        self.method = available_method()
        self.group = f"{name}-{os.getpid()}-{pid}"
        self._moved: tuple[Path, Path] | None = None  # (our group, where the process came from)

    async def __aenter__(self) -> CpuThrottle:
        if self.method.startswith("cgroup"):
            self._enter_cgroup()
        return self

    def _enter_cgroup(self) -> None:
        quota = max(1000, int(PERIOD_US * self.share))
        if self.method.startswith("cgroup2"):
            root = _v2_root()
            assert root is not None
            back = root / _cgroup_of(self.pid, "").lstrip("/")
            group = root / self.group
            group.mkdir(exist_ok=True)
            (group / "cpu.max").write_text(f"{quota} {PERIOD_US}")
        else:
            root = _v1_root()
            assert root is not None
            back = root / _cgroup_of(self.pid, "cpu").lstrip("/")
            group = root / self.group
            group.mkdir(exist_ok=True)
            (group / "cpu.cfs_period_us").write_text(str(PERIOD_US))
            (group / "cpu.cfs_quota_us").write_text(str(quota))
        self._moved = (group, back)
        (group / "cgroup.procs").write_text(str(self.pid))  # every thread of the process moves with it

    async def run_duty_cycle(self) -> None:
        """For the duty-cycle method: stop and continue the process until cancelled."""
        if self.method.startswith("cgroup"):
            await trio.sleep_forever()
        try:
            while True:
                await trio.sleep(DUTY_PERIOD_S * self.share)
                os.kill(self.pid, signal.SIGSTOP)
                await trio.sleep(DUTY_PERIOD_S * (1 - self.share))
                os.kill(self.pid, signal.SIGCONT)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGCONT)

    def release(self) -> None:
        if self._moved is None:
            return
        group, back = self._moved
        self._moved = None
        with contextlib.suppress(OSError):  # the process may have exited meanwhile
            (back / "cgroup.procs").write_text(str(self.pid))
        with contextlib.suppress(OSError):
            group.rmdir()

    async def __aexit__(self, *exc: object) -> None:
        self.release()

    def cpu_seconds(self) -> float:
        """CPU time the process used so far (user + system), to show the cap took effect."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        return (int(fields[11]) + int(fields[12])) / ticks
