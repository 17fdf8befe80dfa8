"""Partitions for the local simulation: the whole run inside a network namespace of its own.

All nodes keep talking over 127.0.0.1, but on the loopback of a namespace this simulation
creates (`ip netns add nodesim-<pid>`), so nftables rules there cut QUIC traffic between two
groups of nodes without touching the host's network.  The HTTP APIs stay reachable, so the
monitor keeps watching both sides.  The namespace is deleted when the run ends, also on Ctrl-C.
Needs root, `ip` (iproute2) and `nft` (nftables).
"""

from __future__ import annotations

import os
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
    """Why partitions cannot be made here, or None if they can."""
    if os.geteuid() != 0:
        return "partitions need root (network namespaces and nftables)"
    missing = [tool for tool in ("ip", "nft") if shutil.which(tool) is None]
    if missing:
        return f"partitions need {' and '.join(missing)} (apt-get install iproute2 nftables)"
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


def split(group_a: list[int], group_b: list[int]) -> None:
    """Drop every UDP datagram between the QUIC ports of group A and group B (both directions)."""
    a = ", ".join(str(p) for p in group_a)
    b = ", ".join(str(p) for p in group_b)
    _run("nft", "add", "table", "inet", TABLE)
    _run("nft", f"add chain inet {TABLE} out {{ type filter hook output priority 0; policy accept; }}")
    _run("nft", f"add rule inet {TABLE} out udp sport {{ {a} }} udp dport {{ {b} }} drop")
    _run("nft", f"add rule inet {TABLE} out udp sport {{ {b} }} udp dport {{ {a} }} drop")


def heal() -> None:
    subprocess.run(["nft", "delete", "table", "inet", TABLE], capture_output=True, timeout=30)
