"""What a joining node knows before it has the chain: the origin's committed peer-set history.

A joiner is not in genesis.json.  `node join` fetches `/history` from the member it joined through
(after its join is committed) and writes it to `HOME/config/membership.json`; the engine reads it at
start and puts every peer set into the graph's schedule BEFORE any event is inserted, so the rounds
the joiner assigns while it catches up are the ones every member assigned.  Changes committed after
the file was written reach the joiner through its own chain (the follower), like on any member.

File: {"origin": str, "history": [{"effective_round": int, "members": [hex...], "address": str|null,
"peer": hex|null, "change": str}, ...]} (the `/history` rows; the genesis row is kept too).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from node.config import split_host_port
from node.consensus.hashgraph import Hashgraph
from node.consensus.peers import PeerSet
from node.crypto import fingerprint
from node.engine.gossip import PeerAddress
from node.errors import ConfigError
from node.fileutil import write_atomically

FILE_NAME = "membership.json"


@dataclass(frozen=True)
class JoinedSet:
    effective_round: int
    members: PeerSet
    peer: bytes | None
    address: str | None  # the QUIC address a joined peer announced (None for genesis and removals)


@dataclass(frozen=True)
class JoinedHistory:
    origin: str
    sets: tuple[JoinedSet, ...]

    def latest(self) -> PeerSet | None:
        return self.sets[-1].members if self.sets else None

    def node_ids(self) -> frozenset[str]:
        """Every node id that is, or will be, a member in the history (the transport accepts them)."""
        return frozenset(fingerprint(m) for s in self.sets for m in s.members.members)

    def addresses(self) -> dict[bytes, str]:
        """Joined members' announced addresses (key -> HOST:PORT), the newest wins."""
        out: dict[bytes, str] = {}
        for s in self.sets:
            if s.peer is not None and s.address is not None:
                out[s.peer] = s.address
        return out

    def apply(self, graph: Hashgraph) -> int:
        """Schedule every non-genesis set in `graph`; returns how many."""
        count = 0
        for s in self.sets:
            if s.effective_round > 0:
                graph.set_peer_set(s.effective_round, s.members)
                count += 1
        return count


def joined_peer_addresses(joined: JoinedHistory | None, known: set[bytes], own_key: bytes) -> list[PeerAddress]:
    """Gossip addresses of members that joined after genesis (not `known` ones, not us)."""
    if joined is None:
        return []
    out = []
    for key, address in joined.addresses().items():
        if key == own_key or key in known:
            continue
        host, port = split_host_port(address)
        out.append(PeerAddress(fingerprint(key), key, host, port))
    return out


def path_in(config_dir: Path) -> Path:
    return config_dir / FILE_NAME


def _row(obj: Any, where: str) -> JoinedSet:
    try:
        rnd = obj["effective_round"]
        members = PeerSet.of(bytes.fromhex(m) for m in obj["members"])
        peer = bytes.fromhex(obj["peer"]) if obj.get("peer") else None
        address = obj.get("address")
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: a history row needs effective_round and members (hex) ({exc})") from exc
    if not isinstance(rnd, int) or rnd < 0 or not len(members):
        raise ConfigError(f"{where}: bad history row {obj!r}")
    if address is not None and not isinstance(address, str):
        raise ConfigError(f"{where}: address must be HOST:PORT")
    return JoinedSet(rnd, members, peer, address)


def load_joined(config_dir: Path) -> JoinedHistory | None:
    """The history `node join` wrote, or None when the home never joined."""
    path = path_in(config_dir)
    if not path.exists():
        return None
    try:
        obj = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc
    if not isinstance(obj, dict) or not isinstance(obj.get("origin"), str) or not isinstance(obj.get("history"), list):
        raise ConfigError(f"{path}: needs an origin and a history list")
    sets = tuple(_row(r, str(path)) for r in obj["history"])
    rounds = [s.effective_round for s in sets]
    if rounds != sorted(rounds):
        raise ConfigError(f"{path}: history rows are not in effective-round order")
    return JoinedHistory(obj["origin"], sets)


def write_joined(config_dir: Path, origin: str, rows: list[dict[str, Any]]) -> Path:
    """Keep the `/history` rows for the engine's next start (checked as the engine will read them)."""
    path = path_in(config_dir)
    text = json.dumps({"origin": origin, "history": rows}, indent=2) + "\n"
    write_atomically(path, text.encode())
    load_joined(config_dir)  # refuse now what the engine would refuse at start
    return path
