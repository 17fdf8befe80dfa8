"""The truth document: a node's shared configuration, validated against a small schema.

A truth is JSON or TOML:

    version = 3                       # integer >= 1 (0 is the node's built-in default)
    description = "optional text"
    [startup]
    grace_timeout_sec = 10.0          # how long a component may take to report ready
    components = [                    # start order; kind: blocking | async | federated
      { name = "redis", kind = "blocking" }, { name = "truth", kind = "async" }, ...]
    [heartbeat]
    channels = [ { svc = "node", interval_sec = 1.0, timeout_sec = 5.0 }, ... ]   # watched by the healer
    [healer]
    interval_sec = 1.0                # the healer's own heartbeat, watched by the sentinel
    timeout_sec = 5.0
    [settings]                        # lowest-but-one layer of node settings (see node/config.py)
    heartbeat_interval = 1.0

Parsing is pure: text in, `Truth` or `TruthInvalid` out, so it is tested without Redis.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from node.config import PARSERS
from node.errors import ConfigError
from node.runtime.errors import TruthInvalid

KINDS = ("blocking", "async", "federated")
_TOP = {"version", "description", "startup", "heartbeat", "healer", "settings"}


@dataclass(frozen=True)
class Component:
    name: str
    kind: str


@dataclass(frozen=True)
class Channel:
    svc: str
    interval_sec: float
    timeout_sec: float


@dataclass(frozen=True)
class Truth:
    version: int
    grace_timeout_sec: float
    components: tuple[Component, ...]
    channels: tuple[Channel, ...]
    healer_interval_sec: float
    healer_timeout_sec: float
    settings: dict[str, Any]
    doc: dict[str, Any]

    def to_json(self) -> str:
        return json.dumps(self.doc, sort_keys=True, separators=(",", ":"))

    def component(self, name: str) -> Component | None:
        return next((c for c in self.components if c.name == name), None)


def parse_text(text: str, *, hint: str = "") -> dict[str, Any]:
    """JSON when it looks like JSON (or the name ends in .json), TOML otherwise."""
    stripped = text.lstrip()
    try:
        if hint.endswith(".json") or stripped.startswith("{"):
            doc = json.loads(text)
        else:
            doc = tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        raise TruthInvalid(f"truth is neither valid JSON nor TOML: {exc}") from None
    if not isinstance(doc, dict):
        raise TruthInvalid("truth must be a JSON object / TOML table")
    return doc


def load_file(path: Path) -> Truth:
    try:
        text = path.read_text()
    except OSError as exc:
        raise TruthInvalid(f"cannot read truth file {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise TruthInvalid(f"truth file {path} is not UTF-8 text") from None
    return validate(parse_text(text, hint=path.name))


def _number(where: str, value: object, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TruthInvalid(f"{where} must be a number, not {value!r}")
    if not low <= float(value) <= high:
        raise TruthInvalid(f"{where} = {value} is out of range ({low} .. {high})")
    return float(value)


def _table(doc: dict[str, Any], key: str, allowed: set[str]) -> dict[str, Any]:
    value = doc.get(key, {})
    if not isinstance(value, dict):
        raise TruthInvalid(f"{key} must be a table/object")
    unknown = set(value) - allowed
    if unknown:
        raise TruthInvalid(f"unknown key(s) in {key}: {', '.join(sorted(unknown))}")
    return value


def _name(where: str, value: object) -> str:
    if not isinstance(value, str) or not value or len(value) > 64 or not all(c.isalnum() or c in "_-." for c in value):
        raise TruthInvalid(f"{where} must be a name of letters, digits, _ - . (got {value!r})")
    return value


def validate(doc: dict[str, Any], *, allow_default: bool = False) -> Truth:
    unknown = set(doc) - _TOP
    if unknown:
        raise TruthInvalid(f"unknown top-level key(s): {', '.join(sorted(unknown))}")
    version = doc.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < (0 if allow_default else 1):
        raise TruthInvalid(f"version must be an integer >= 1, not {version!r}")
    if not isinstance(doc.get("description", ""), str):
        raise TruthInvalid("description must be text")
    startup = _table(doc, "startup", {"grace_timeout_sec", "components"})
    grace = _number("startup.grace_timeout_sec", startup.get("grace_timeout_sec", 10.0), 0.1, 600)
    components: list[Component] = []
    for i, item in enumerate(startup.get("components", [])):
        if not isinstance(item, dict) or set(item) - {"name", "kind"}:
            raise TruthInvalid(f"startup.components[{i}] must be {{name, kind}}")
        name = _name(f"startup.components[{i}].name", item.get("name"))
        kind = item.get("kind", "async")
        if kind not in KINDS:
            raise TruthInvalid(f"startup.components[{i}].kind must be one of {', '.join(KINDS)}, not {kind!r}")
        if any(c.name == name for c in components):
            raise TruthInvalid(f"startup component {name!r} is listed twice")
        components.append(Component(name, kind))
    channels: list[Channel] = []
    for i, item in enumerate(_table(doc, "heartbeat", {"channels"}).get("channels", [])):
        if not isinstance(item, dict) or set(item) - {"svc", "interval_sec", "timeout_sec"}:
            raise TruthInvalid(f"heartbeat.channels[{i}] must be {{svc, interval_sec, timeout_sec}}")
        svc = _name(f"heartbeat.channels[{i}].svc", item.get("svc"))
        interval = _number(f"heartbeat.channels[{i}].interval_sec", item.get("interval_sec", 1.0), 0.01, 3600)
        timeout = _number(f"heartbeat.channels[{i}].timeout_sec", item.get("timeout_sec", 5 * interval), 0.02, 36000)
        if timeout <= interval:
            raise TruthInvalid(f"heartbeat.channels[{i}]: timeout_sec must exceed interval_sec")
        channels.append(Channel(svc, interval, timeout))
    healer = _table(doc, "healer", {"interval_sec", "timeout_sec"})
    h_interval = _number("healer.interval_sec", healer.get("interval_sec", 1.0), 0.01, 3600)
    h_timeout = _number("healer.timeout_sec", healer.get("timeout_sec", 5 * h_interval), 0.02, 36000)
    if h_timeout <= h_interval:
        raise TruthInvalid("healer.timeout_sec must exceed healer.interval_sec")
    settings = _table(doc, "settings", set(PARSERS) - {"origin"})
    for key, value in settings.items():
        try:
            PARSERS[key](value)
        except ConfigError as exc:
            raise TruthInvalid(f"settings.{key}: {exc}") from None
    return Truth(version, grace, tuple(components), tuple(channels), h_interval, h_timeout, settings, doc)


def default_truth(services: list[tuple[str, str]], heartbeat_interval: float) -> Truth:
    """Version 0: what a node uses until a truth is loaded.  `services` is (name, kind) in start order."""
    timeout = max(5 * heartbeat_interval, 2.0)
    watched = [name for name, _ in services if name not in ("healer", "sentinel")]
    doc: dict[str, Any] = {
        "version": 0,
        "description": "built-in default",
        "startup": {"grace_timeout_sec": 10.0, "components": [{"name": n, "kind": k} for n, k in services]},
        "heartbeat": {
            "channels": [{"svc": n, "interval_sec": heartbeat_interval, "timeout_sec": timeout} for n in watched]
        },
        "healer": {"interval_sec": heartbeat_interval, "timeout_sec": timeout},
    }
    return validate(doc, allow_default=True)
