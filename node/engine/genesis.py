"""The genesis of an origin: its name and founding members (id, public key, QUIC address).

Written by `node testnet` (or by an operator) to `HOME/config/genesis.json`; read at start to build
the round-0 peer set and to pin each peer's key for the transport.  The node id of every member
must be the fingerprint of its key, so a peer list of `ID@HOST:PORT` pins keys by itself.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from node.crypto import fingerprint
from node.errors import ConfigError


@dataclass(frozen=True)
class Member:
    node_id: str
    public_key: bytes
    address: str  # HOST:PORT of its QUIC endpoint

    def to_obj(self) -> dict[str, str]:
        return {"id": self.node_id, "public_key": self.public_key.hex(), "address": self.address}


@dataclass(frozen=True)
class Genesis:
    origin: str
    members: tuple[Member, ...]

    def to_json(self) -> str:
        return json.dumps({"origin": self.origin, "members": [m.to_obj() for m in self.members]}, indent=2) + "\n"

    def member(self, node_id: str) -> Member | None:
        return next((m for m in self.members if m.node_id == node_id), None)

    @property
    def public_keys(self) -> list[bytes]:
        return [m.public_key for m in self.members]


def _member(obj: Any, where: str) -> Member:
    if not isinstance(obj, dict):
        raise ConfigError(f"{where}: a member must be an object")
    try:
        node_id, key_hex, address = str(obj["id"]), str(obj["public_key"]), str(obj["address"])
        key = bytes.fromhex(key_hex)
    except (KeyError, ValueError) as exc:
        raise ConfigError(f"{where}: a member needs id, public_key (hex) and address ({exc})") from exc
    if len(key) != 32:
        raise ConfigError(f"{where}: member {node_id} has a public key of {len(key)} bytes, not 32 (Ed25519)")
    if fingerprint(key) != node_id:
        raise ConfigError(f"{where}: member id {node_id} is not the fingerprint of its key")
    return Member(node_id, key, address)


def parse_genesis(text: str, where: str = "genesis") -> Genesis:
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{where}: not JSON ({exc.msg} at line {exc.lineno})") from exc
    if not isinstance(obj, dict) or not isinstance(obj.get("origin"), str) or not isinstance(obj.get("members"), list):
        raise ConfigError(f"{where}: needs an origin and a members list")
    members = tuple(_member(m, where) for m in obj["members"])
    if not members:
        raise ConfigError(f"{where}: no members")
    if len({m.node_id for m in members}) != len(members):
        raise ConfigError(f"{where}: a member is listed twice")
    return Genesis(obj["origin"], members)


def load_genesis(path: Path) -> Genesis | None:
    if not path.exists():
        return None
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc
    return parse_genesis(text, str(path))
