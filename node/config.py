"""Settings of a node and where each one came from.

Precedence, highest first: command-line flags > `NODE_*` environment > `HOME/config/node.toml` >
the truth document's `settings` table > built-in defaults.  Every value is parsed and checked here,
so the rest of the node receives a typed, valid `Settings` and never re-parses strings.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from node.errors import ConfigError

LOG_FORMATS = ("auto", "plain", "json")
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")


@dataclass(frozen=True)
class Settings:
    """The effective settings of one node (or one command acting on a home)."""

    home: Path
    origin: str | None = None
    listen: str = "127.0.0.1:7700"
    api: str = "127.0.0.1:7800"
    peers: tuple[str, ...] = ()
    redis_url: str | None = None  # None: the node runs its own embedded Redis
    log_format: str = "auto"
    log_level: str = "info"
    namespace: str = ""  # Redis key prefix so several nodes can share one Redis
    heartbeat_interval: float = 1.0
    wait_for_truth: bool = False  # the truth becomes a blocking startup component
    plugins: str = "all"  # which layers' node/<pkg>/plugin.py to load: "all", "none" or "engine,api"
    keep_rounds: int = 50  # processed consensus rounds kept in memory (older ones are served from disk)
    # Trust bootstrap: a node with `ca_node` asks that node (its CA certificate pinned by `ca_fingerprint`)
    # for its certificate at start; a node with `ca_dir` holds the origin CA and issues online.
    ca_node: str | None = None  # NODE_ID@HOST:PORT of the origin's CA node
    ca_fingerprint: str | None = None  # SHA-256 of the CA certificate (hex)
    ca_dir: str | None = None  # the CA directory (relative to the home) on the CA node
    bootstrap_token: str | None = None  # one-time token for the first request (genesis members need none)
    cert_lifetime: float = 86400.0  # seconds; certificates the CA node issues (renewed at 2/3 of it)
    revocation_poll: float = 30.0  # seconds between revocation-list fetches from the CA node
    cert_grace: float = 600.0  # seconds a CA-issued certificate may be used before it must be on the chain
    phase_deadlines: str = "self-signed=10,ca-issued=30,consensus=120"  # PHASE=SECONDS; alert when missed
    # Membership: when set (normally in the origin's truth), joins need an approval by an owner or
    # admin of this point (`/membership/approve`); the nodes put the policy on the chain.
    join_approval_point: str | None = None
    # Federation (node/federation): our DNS responder, our federation QUIC endpoint, the origins we
    # federate with, the DNS servers that answer for them, their CA pins (`origin=sha256hex`), and
    # the default timeout of a cross-origin request (consensus time).
    dns: str | None = None  # HOST:PORT where this node answers DNS for its origin
    federation_listen: str | None = None  # HOST:PORT of the federation QUIC endpoint (advertised in SRV)
    federation_origins: tuple[str, ...] = ()
    federation_nameservers: tuple[str, ...] = ()  # HOST:PORT of DNS servers answering for those origins
    federation_pins: tuple[str, ...] = ()  # ORIGIN=SHA256HEX: the CA key pins trusted for each origin
    federation_trust_dns: bool = False  # take CA pins from DNS unchecked (tests, or behind DNSSEC validation)
    federation_timeout: float = 120.0  # seconds of consensus time before a cross-origin request fails

    @property
    def config_file(self) -> Path:
        return self.home / "config" / "node.toml"


@dataclass(frozen=True)
class LoadedSettings:
    settings: Settings
    sources: dict[str, str] = field(default_factory=dict)  # setting name -> "flag --x", "env NODE_X", ...


def split_host_port(value: str) -> tuple[str, int]:
    """`H:P` (IPv6 as `[::1]:P`) into a host and a port, or ConfigError."""
    host, sep, port_text = value.rpartition(":")
    if not sep or not host or not port_text.isdigit():
        raise ConfigError(f"address {value!r} is not HOST:PORT")
    port = int(port_text)
    if not 0 <= port <= 65535:
        raise ConfigError(f"port {port} of {value!r} is out of range")
    return host.strip("[]"), port


def _address(value: object) -> str:
    text = str(value)
    split_host_port(text)
    return text


def _peer(value: object) -> str:
    text = str(value)
    node_id, sep, addr = text.partition("@")
    if not sep or not re.fullmatch(r"[0-9a-f]{20}", node_id):
        raise ConfigError(f"peer {text!r} is not NODE_ID@HOST:PORT (NODE_ID: 20 hex chars)")
    split_host_port(addr)
    return text


def _peers(value: object) -> tuple[str, ...]:
    items: list[object]
    if isinstance(value, str):
        items = [p for p in value.split(",") if p.strip()]
    elif isinstance(value, list | tuple):
        items = list(value)
    else:
        raise ConfigError(f"peers must be a list, not {value!r}")
    return tuple(_peer(str(p).strip()) for p in items)


def _origin(value: object) -> str:
    text = str(value)
    if not re.fullmatch(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*", text) or len(text) > 253:
        raise ConfigError(f"origin {text!r} is not a DNS-style name like alpha.example")
    return text


def _redis_url(value: object) -> str | None:
    text = str(value).strip()
    if text in ("", "embedded"):
        return None
    if not text.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError(f"redis URL {text!r} must start with redis://, rediss:// or unix://")
    return text


def _log_format(value: object) -> str:
    if value not in LOG_FORMATS:
        raise ConfigError(f"log format {value!r} is not one of {', '.join(LOG_FORMATS)}")
    return str(value)


def parse_log_levels(spec: str) -> tuple[str, dict[str, str]]:
    """`info,consensus=debug` into a default level and per-logger levels."""
    default = "info"
    per: dict[str, str] = {}
    for part in (p.strip() for p in spec.split(",") if p.strip()):
        name, sep, level = part.rpartition("=")
        level = level.lower()
        if level not in LOG_LEVELS or (sep and not name):
            raise ConfigError(f"log level {part!r} is not LEVEL or LOGGER=LEVEL (levels: {', '.join(LOG_LEVELS)})")
        if sep:
            per[name] = level
        else:
            default = level
    return default, per


def _log_level(value: object) -> str:
    parse_log_levels(str(value))
    return str(value)


def _namespace(value: object) -> str:
    text = str(value)
    if text and not _NAME.fullmatch(text):
        raise ConfigError(f"namespace {text!r} must be letters, digits, _ . : - (at most 64)")
    return text


def _positive(value: object) -> float:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{value!r} is not a number") from exc
    if not 0.01 <= number <= 3600:
        raise ConfigError(f"{number} is out of range (0.01 .. 3600 seconds)")
    return number


def _bool(value: object) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ConfigError(f"{value!r} is not a boolean")


def _plugins(value: object) -> str:
    text = ",".join(str(v) for v in value) if isinstance(value, list | tuple) else str(value)
    text = text.replace(" ", "")
    if text not in ("all", "none") and not all(re.fullmatch(r"[a-z_][a-z0-9_]*", p) for p in text.split(",")):
        raise ConfigError(f"plugins {text!r} must be all, none or a comma-separated list of package names")
    return text


def _keep_rounds(value: object) -> int:
    try:
        number = int(str(value))
    except ValueError as exc:
        raise ConfigError(f"keep_rounds {value!r} is not an integer") from exc
    if not 8 <= number <= 100_000:
        raise ConfigError(f"keep_rounds {number} is out of range (8 .. 100000)")
    return number


def _fingerprint(value: object) -> str:
    text = str(value).strip().lower().replace(":", "")
    if not re.fullmatch(r"[0-9a-f]{64}", text):
        raise ConfigError(f"CA fingerprint {value!r} is not a SHA-256 in hex (64 hex digits)")
    return text


def _ca_dir(value: object) -> str:
    text = str(value).strip()
    if not text:
        raise ConfigError("ca_dir must name a directory")
    return text


def _point_name(value: object) -> str:
    text = str(value).strip()
    if not re.fullmatch(r"[a-z0-9][a-z0-9._-]{0,63}", text):  # the point names actions accept
        raise ConfigError(f"{text!r} is not a point name (lower-case letters, digits, . _ -; at most 64)")
    return text


def _token(value: object) -> str:
    text = str(value).strip()
    if not re.fullmatch(r"[A-Za-z0-9_-]{8,128}", text):
        raise ConfigError("bootstrap token must be 8-128 letters, digits, _ or -")
    return text


def _lifetime(value: object) -> float:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{value!r} is not a number of seconds") from exc
    if not 10 <= number <= 366 * 86400:
        raise ConfigError(f"certificate lifetime {number} s is out of range (10 s .. 366 days)")
    return number


def _list(value: object, what: str) -> list[str]:
    if isinstance(value, str):
        return [p.strip() for p in value.split(",") if p.strip()]
    if isinstance(value, list | tuple):
        return [str(p).strip() for p in value]
    raise ConfigError(f"{what} must be a list, not {value!r}")


def _addresses(value: object) -> tuple[str, ...]:
    return tuple(_address(v) for v in _list(value, "addresses"))


def _origins(value: object) -> tuple[str, ...]:
    return tuple(_origin(v) for v in _list(value, "origins"))


def _pins(value: object) -> tuple[str, ...]:
    out = []
    for item in _list(value, "pins"):
        origin, sep, pin = item.partition("=")
        _origin(origin)
        if not sep or not re.fullmatch(r"[0-9a-f]{64}", pin):
            raise ConfigError(f"pin {item!r} is not ORIGIN=SHA256HEX (64 lower-case hex digits)")
        out.append(item)
    return tuple(out)


def _request_timeout(value: object) -> float:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{value!r} is not a number of seconds") from exc
    if not 0.1 <= number <= 3600:
        raise ConfigError(f"federation timeout {number} s is out of range (0.1 .. 3600 seconds)")
    return number


def _grace(value: object) -> float:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{value!r} is not a number of seconds") from exc
    if not 1 <= number <= 366 * 86400:
        raise ConfigError(f"cert_grace {number} s is out of range (1 s .. 366 days)")
    return number


def _phase_deadlines(value: object) -> str:
    from node.runtime.phase_deadlines import parse_deadlines

    parse_deadlines(str(value))
    return str(value)


PARSERS: dict[str, Callable[[object], Any]] = {
    "origin": _origin,
    "listen": _address,
    "api": _address,
    "peers": _peers,
    "redis_url": _redis_url,
    "log_format": _log_format,
    "log_level": _log_level,
    "namespace": _namespace,
    "heartbeat_interval": _positive,
    "wait_for_truth": _bool,
    "plugins": _plugins,
    "keep_rounds": _keep_rounds,
    "ca_node": _peer,
    "ca_fingerprint": _fingerprint,
    "ca_dir": _ca_dir,
    "bootstrap_token": _token,
    "cert_lifetime": _lifetime,
    "revocation_poll": _positive,
    "cert_grace": _grace,
    "phase_deadlines": _phase_deadlines,
    "join_approval_point": _point_name,
    "dns": _address,
    "federation_listen": _address,
    "federation_origins": _origins,
    "federation_nameservers": _addresses,
    "federation_pins": _pins,
    "federation_trust_dns": _bool,
    "federation_timeout": _request_timeout,
}


def resolve_home(flag: str | Path | None, env: Mapping[str, str]) -> tuple[Path, str]:
    if flag is not None:
        return Path(flag).expanduser().absolute(), "flag --home"
    if env.get("NODE_HOME"):
        return Path(env["NODE_HOME"]).expanduser().absolute(), "env NODE_HOME"
    return Path("~/.node").expanduser().absolute(), "default"


def read_config_file(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from exc
    return data


def load_settings(
    *,
    flags: Mapping[str, object] | None = None,
    env: Mapping[str, str] | None = None,
    truth_settings: Mapping[str, object] | None = None,
) -> LoadedSettings:
    """Merge the layers; `flags` holds only the flags the user gave (None values are ignored)."""
    flags = {k: v for k, v in (flags or {}).items() if v is not None and v != ()}
    env = os.environ if env is None else env
    home, home_source = resolve_home(flags.pop("home", None), env)  # type: ignore[arg-type]
    config_path = home / "config" / "node.toml"
    layers: list[tuple[str, Mapping[str, object]]] = [
        ("truth", truth_settings or {}),
        (f"file {config_path}", read_config_file(config_path)),
        ("env", {name: env[f"NODE_{name.upper()}"] for name in PARSERS if f"NODE_{name.upper()}" in env}),
        ("flag", flags),
    ]
    values: dict[str, object] = {}
    sources: dict[str, str] = {f.name: "default" for f in fields(Settings)}
    sources["home"] = home_source
    for label, layer in layers:
        for name, raw in layer.items():
            if name not in PARSERS:
                raise ConfigError(f"unknown setting {name!r} in {label}")
            try:
                values[name] = PARSERS[name](raw)
            except ConfigError as exc:
                raise ConfigError(f"{name} ({_describe(label, name)}): {exc}") from None
            sources[name] = _describe(label, name)
    return LoadedSettings(Settings(home=home, **values), sources)  # type: ignore[arg-type]


def _describe(label: str, name: str) -> str:
    if label == "env":
        return f"env NODE_{name.upper()}"
    if label == "flag":
        return f"flag --{name.replace('_', '-')}"
    return label
