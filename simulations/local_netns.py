"""Partitions and packet loss for the local simulation: the run inside a network namespace of its own.

All nodes keep talking over 127.0.0.1, but on the loopback of a namespace this simulation
creates (`ip netns add nodesim-<pid>`), so nftables rules there cut QUIC traffic between two
groups of nodes, or drop a share of their datagrams at random, without touching the host's
network.  The HTTP APIs stay reachable, so the monitor keeps watching both sides.  The namespace
is deleted when the run ends, also on Ctrl-C.
Needs root, `ip` (iproute2) and `nft` (nftables).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys

NETNS_ENV = "SIMULATION_NETNS"
TABLE = "nodesim"


def active() -> str | None:
    """The namespace this run is inside, if it was started in one by `reexec_in_namespace`."""
    return os.environ.get(NETNS_ENV)


def unavailable() -> str | None:
    """Why partitions and loss cannot be made here, or None if they can."""
    if os.geteuid() != 0:
        return "needs root (network namespaces and nftables)"
    missing = [tool for tool in ("ip", "nft") if shutil.which(tool) is None]
    if missing:
        return f"needs {' and '.join(missing)} (apt-get install iproute2 nftables)"
    return None


def _run(*cmd: str) -> None:
    subprocess.run(cmd, check=True, capture_output=True, timeout=30)


def reexec_in_namespace(argv: list[str]) -> int:
    """Run `python -m simulations.local argv` again inside a new namespace; delete it after."""
    name = f"nodesim-{os.getpid()}"
    _run("ip", "netns", "add", name)
    try:
        _run("ip", "netns", "exec", name, "ip", "link", "set", "lo", "up")
        child = subprocess.Popen(["ip", "netns", "exec", name, sys.executable, "-m", "simulations.local", *argv],
                                 env={**os.environ, NETNS_ENV: name})
        try:
            return child.wait()
        except KeyboardInterrupt:
            # From a terminal the child got the same Ctrl-C; if only we did, pass it on once.
            try:
                return child.wait(timeout=2)
            except subprocess.TimeoutExpired:
                child.send_signal(signal.SIGINT)
                return child.wait()
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=30)


def _table() -> None:
    _run("nft", "add", "table", "inet", TABLE)
    _run("nft", f"add chain inet {TABLE} out {{ type filter hook output priority 0; policy accept; }}")


def lossy(ports: list[int], percent: int) -> None:
    """Drop `percent` % of the UDP datagrams sent to `ports`, each drawn independently (nftables
    `numgen random`).  Every datagram between two of these nodes is addressed to one of them, so
    matching the destination only gives each datagram exactly one chance to be lost."""
    if not 0 < percent < 100:
        raise ValueError(f"loss percent {percent} is not between 1 and 99")
    p = ", ".join(str(port) for port in ports)
    _table()
    _run("nft", f"add rule inet {TABLE} out udp dport {{ {p} }} numgen random mod 100 < {percent} counter drop")


def dropped() -> int:
    """Datagrams the `lossy` rules dropped so far (their nftables counters)."""
    listing = subprocess.run(["nft", "list", "table", "inet", TABLE], capture_output=True, text=True, timeout=30)
    return sum(int(m) for m in re.findall(r"counter packets (\d+)", listing.stdout))


def split(group_a: list[int], group_b: list[int]) -> None:
    """Drop every UDP datagram between the QUIC ports of group A and group B (both directions)."""
    a = ", ".join(str(p) for p in group_a)
    b = ", ".join(str(p) for p in group_b)
    _table()
    _run("nft", f"add rule inet {TABLE} out udp sport {{ {a} }} udp dport {{ {b} }} drop")
    _run("nft", f"add rule inet {TABLE} out udp sport {{ {b} }} udp dport {{ {a} }} drop")


def heal() -> None:
    subprocess.run(["nft", "delete", "table", "inet", TABLE], capture_output=True, timeout=30)
