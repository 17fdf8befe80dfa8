"""Settings of the chain-backed trust rules.

`cert_grace` (seconds a CA-issued certificate may be used before it must be on the chain) is
parsed and range-checked in node/config.py like every other setting (flag, `NODE_CERT_GRACE`,
node.toml or truth); here it only becomes a timedelta.
"""

from __future__ import annotations

import datetime as dt

from node.config import Settings


def cert_grace(settings: Settings) -> dt.timedelta:
    return dt.timedelta(seconds=settings.cert_grace)
