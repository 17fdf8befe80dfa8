"""Settings of the chain-backed trust rules, with their defaults.

`cert_grace` (seconds a CA-issued certificate may be used before it must be on the chain) is read
from the node's settings when they define it, else from `NODE_CERT_GRACE` in the environment.
"""

from __future__ import annotations

import datetime as dt
import os

from node.config import Settings
from node.errors import ConfigError
from node.trust.transparency import DEFAULT_GRACE

MIN_GRACE_S = 1.0


def cert_grace(settings: Settings) -> dt.timedelta:
    raw: object = getattr(settings, "cert_grace", None)
    if raw is None:
        raw = os.environ.get("NODE_CERT_GRACE")
    if raw is None:
        return DEFAULT_GRACE
    try:
        seconds = float(str(raw))
    except ValueError as exc:
        raise ConfigError(f"cert_grace {raw!r} is not a number of seconds") from exc
    if not MIN_GRACE_S <= seconds <= 366 * 86400:
        raise ConfigError(f"cert_grace {seconds} s is out of range ({MIN_GRACE_S} s .. 366 days)")
    return dt.timedelta(seconds=seconds)
