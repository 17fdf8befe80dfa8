"""Where a home keeps its certificates (kept free of heavy imports: commands use it at load)."""

from __future__ import annotations

from pathlib import Path


def issued_certificate_path(home_root: Path) -> Path:
    return home_root / "keys" / "node.crt"


def ca_certificate_path(home_root: Path) -> Path:
    return home_root / "config" / "ca.crt"
