"""The home directory of a node: its layout, `node init`, and the single-daemon lock.

Layout: `config/node.toml` (settings), `config/truth.json` (the last truth loaded with
`node truth load --home`), `keys/node.key` (Ed25519, mode 0600), `data/` (storage), `run/`
(pid, lock, embedded Redis socket and its URL, API URL: present only while a node runs).
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from node.crypto import PrivateKey, read_private_key, write_private_key
from node.runtime.errors import AlreadyRunning, HomeError

_UNIX_PATH_MAX = 100  # sun_path is 108 bytes; keep a margin


@dataclass(frozen=True)
class Home:
    root: Path

    @property
    def config_file(self) -> Path:
        return self.root / "config" / "node.toml"

    @property
    def truth_file(self) -> Path:
        return self.root / "config" / "truth.json"

    @property
    def key_file(self) -> Path:
        return self.root / "keys" / "node.key"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def run(self) -> Path:
        return self.root / "run"

    @property
    def pid_file(self) -> Path:
        return self.run / "pid"

    @property
    def lock_file(self) -> Path:
        return self.run / "lock"

    @property
    def api_file(self) -> Path:
        return self.run / "api"

    @property
    def redis_url_file(self) -> Path:
        """The running node's Redis URL (embedded or external, mode 0600): tools (`node truth load`,
        `node healer`) find the node's Redis through it.  Written once that Redis answers."""
        return self.run / "redis.url"

    def write_redis_url(self, url: str, namespace: str) -> None:
        """Line 1: the URL; line 2: the key namespace the node uses."""
        fd = os.open(self.redis_url_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(f"{url}\n{namespace}\n")

    @property
    def redis_socket(self) -> Path:
        path = self.run / "redis.sock"
        if len(str(path)) <= _UNIX_PATH_MAX:
            return path
        # A deep home would overflow sun_path: use a short, stable path derived from the home.
        digest = hashlib.sha256(str(self.root).encode()).hexdigest()[:16]
        return Path(tempfile.gettempdir()) / f"node-redis-{digest}.sock"

    def load_key(self) -> PrivateKey:
        if not self.key_file.exists():
            raise HomeError(f"no node key at {self.key_file}; run `node init --origin O --home {self.root}` first")
        return read_private_key(self.key_file)

    def running_redis(self) -> tuple[str, str] | None:
        """(URL, namespace) of the Redis of a node running on this home, if any."""
        if not self.is_locked():
            return None
        try:
            lines = self.redis_url_file.read_text().splitlines()
        except OSError:
            return None
        if not lines or not lines[0].strip():
            return None
        return lines[0].strip(), (lines[1].strip() if len(lines) > 1 else "")

    def is_locked(self) -> bool:
        """True while a daemon holds this home's lock."""
        try:
            fd = os.open(self.lock_file, os.O_RDWR)
        except OSError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return True
        finally:
            os.close(fd)  # closing also releases a lock we might just have taken
        return False


@dataclass
class InitReport:
    node_id: str
    created: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)


def init_home(home: Home, origin: str) -> InitReport:
    """Create what is missing; never overwrite a key or a config file."""
    created: list[str] = []
    existing: list[str] = []
    try:
        for folder in (home.root, home.config_file.parent, home.key_file.parent, home.data, home.run):
            (existing if folder.is_dir() else created).append(str(folder) + "/")
            folder.mkdir(parents=True, exist_ok=True)
        if home.config_file.exists():
            existing.append(str(home.config_file))
        else:
            template = resources.files("node").joinpath("templates/node.toml").read_text()
            home.config_file.write_text(template.replace("{origin}", origin))
            created.append(str(home.config_file))
        if home.key_file.exists():
            existing.append(str(home.key_file))
            key = read_private_key(home.key_file)
        else:
            key = PrivateKey.generate("ed25519")
            write_private_key(home.key_file, key)
            created.append(str(home.key_file))
    except PermissionError as exc:
        raise HomeError(f"home {home.root} is not writable: {exc.strerror} ({exc.filename})") from exc
    except OSError as exc:
        if exc.errno in (errno.EROFS, errno.EACCES, errno.ENOTDIR, errno.EEXIST):
            raise HomeError(f"home {home.root} is not usable: {exc.strerror} ({exc.filename})") from exc
        raise
    return InitReport(key.fingerprint, created, [e for e in existing if e.rstrip("/") != str(home.root)])


@contextmanager
def daemon_lock(home: Home) -> Iterator[None]:
    """Hold the home's lock and its pid file for the life of a daemon; refuse a second daemon."""
    if not home.key_file.exists():
        raise HomeError(f"home {home.root} is not initialised; run `node init --origin O --home {home.root}`")
    try:
        home.run.mkdir(parents=True, exist_ok=True)
        fd = os.open(home.lock_file, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise HomeError(f"home {home.root} is not writable: {exc.strerror}") from exc
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            other = _read_pid(home.pid_file)
            raise AlreadyRunning(f"a node is already running on {home.root} (pid {other})") from None
        home.pid_file.write_text(f"{os.getpid()}\n")
        try:
            yield
        finally:
            for path in (home.pid_file, home.redis_url_file, home.api_file):
                path.unlink(missing_ok=True)
    finally:
        os.close(fd)


def _read_pid(path: Path) -> str:
    try:
        return path.read_text().strip() or "?"
    except OSError:
        return "?"
