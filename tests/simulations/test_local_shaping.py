"""Issue 10: the means of the latency and slow-node faults, on their own: the delaying UDP relay
(this kernel has no netem) and the CPU throttle (cgroup quota as root, else a stop/continue cycle)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from simulations.local_relay import DelayRelay
from simulations.local_slow import CGROUP_ROOT, DUTY_CYCLE, CpuThrottle


async def echo_server(task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
    sock = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    await sock.bind(("127.0.0.1", 0))
    with sock:
        task_status.started(sock.getsockname()[1])
        while True:
            data, peer = await sock.recvfrom(65535)
            await sock.sendto(b"echo:" + data, peer)


async def round_trip(port: int, payloads: list[bytes]) -> tuple[list[bytes], float]:
    sock = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    await sock.bind(("127.0.0.1", 0))
    with sock:
        started = time.monotonic()
        for p in payloads:
            await sock.sendto(p, ("127.0.0.1", port))
        got = []
        with trio.fail_after(10):
            for _ in payloads:
                data, _ = await sock.recvfrom(65535)
                got.append(data)
        return got, time.monotonic() - started


async def test_relay_delays_each_way_keeps_order_and_heals() -> None:
    async with trio.open_nursery() as nursery:
        target = await nursery.start(echo_server)
        relay = DelayRelay(("127.0.0.1", target), delay_s=0.15)
        port = await nursery.start(relay.run)
        payloads = [b"%d" % i for i in range(20)]
        got, elapsed = await round_trip(port, payloads)
        assert got == [b"echo:" + p for p in payloads]  # in order, every one, through the target
        assert elapsed >= 0.3  # held 0.15 s on the way there and again on the way back
        relay.delay_s = 0.0  # the fault heals; the path stays
        got, elapsed = await round_trip(port, [b"x"])
        assert got == [b"echo:x"] and elapsed < 0.3
        assert relay.stats.forwarded >= 2 * 21 - 1 and relay.stats.clients == 2  # the last count may lag
        nursery.cancel_scope.cancel()


@pytest.fixture
def busy() -> Iterator[subprocess.Popen[bytes]]:
    """A process that wants a whole CPU."""
    proc = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()


def process_state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


@pytest.mark.parametrize("duty_cycle", [False, True], ids=["best-method", "duty-cycle"])
async def test_cpu_throttle_caps_a_busy_process_and_cleans_up(busy: subprocess.Popen[bytes], duty_cycle: bool) -> None:
    throttle = CpuThrottle(busy.pid, share=0.1, name="nodesim-test")
    if duty_cycle:
        throttle.method = DUTY_CYCLE  # what a run without root or cgroups gets
    async with throttle, trio.open_nursery() as nursery:
        nursery.start_soon(throttle.run_duty_cycle)
        before, t0 = throttle.cpu_seconds(), time.monotonic()
        await trio.sleep(2.0)  # a measuring window: the CPU the capped process got in it (an upper bound)
        used, wall = throttle.cpu_seconds() - before, time.monotonic() - t0
        nursery.cancel_scope.cancel()
    assert used <= 0.25 * wall, (throttle.method, used, wall)  # 10 % allowed, with slack
    if throttle.method.startswith("cgroup"):
        groups = [CGROUP_ROOT / throttle.group, CGROUP_ROOT / "cpu" / throttle.group,
                  CGROUP_ROOT / "unified" / throttle.group]
        assert not any(g.exists() for g in groups)
    # Released: the process runs freely again (and is not left stopped by the duty cycle).
    state = process_state(busy.pid)
    assert state in ("R", "S"), state
