"""`node testnet`: the homes of a local test network (origins of N nodes on 127.0.0.1).

Each node gets a home (key, config with its listen/API addresses and its peers) and each origin a
genesis file naming its members, so `node start --home DIR/<origin>/node<i>` brings it up.  A
manifest (`DIR/testnet.json`) lists everything for scripts and simulations.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
from pathlib import Path

import click

from node.config import PARSERS
from node.engine.genesis import Genesis, Member
from node.engine.paths import ca_certificate_path, issued_certificate_path
from node.errors import ConfigError
from node.runtime.cli_support import OneLineCommand
from node.runtime.home import Home, init_home

# Offline issuance for a local test network: long enough that a testnet outlives a working day.
# Running origins renew short-lived certificates through their CA service instead.
TESTNET_CERT_LIFETIME = dt.timedelta(days=30)

DEFAULT_ORIGINS = ("alpha.example", "beta.example", "gamma.example", "delta.example", "epsilon.example")


def free_port(kind: int, host: str) -> int:
    """A port that is free now for `kind` (SOCK_DGRAM for QUIC, SOCK_STREAM for HTTP)."""
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def _config_text(origin: str, listen: str, api: str, peers: list[str]) -> str:
    peer_lines = "".join(f'  "{p}",\n' for p in peers)
    return (
        "# Written by `node testnet`; edit freely.\n"
        f'origin = "{origin}"\n'
        f'listen = "{listen}"\n'
        f'api = "{api}"\n'
        f"peers = [\n{peer_lines}]\n"
    )


def make_testnet(out: Path, nodes: int, origins: list[str], host: str = "127.0.0.1") -> dict[str, object]:
    if nodes < 1 or nodes > 64:
        raise ConfigError("--nodes must be between 1 and 64")
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"{out} exists and is not empty; choose a new --out directory")
    from node.trust import OriginCA, certificate_pem, make_csr  # heavy: only when used

    manifest: dict[str, object] = {"host": host, "origins": []}
    for origin in origins:
        PARSERS["origin"](origin)
        now = dt.datetime.now(dt.UTC)
        ca = OriginCA.generate(origin, now)
        ca_dir = out / origin / "ca"
        ca_dir.mkdir(parents=True)
        fd = os.open(ca_dir / "ca.key", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(ca.key_pem())
        (ca_dir / "ca.crt").write_bytes(ca.certificate_pem())
        homes: list[tuple[Home, Member, str]] = []
        for i in range(nodes):
            home = Home(out / origin / f"node{i}")
            report = init_home(home, origin)
            key = home.load_key()
            issued = ca.issue(make_csr(key, origin), now, lifetime=TESTNET_CERT_LIFETIME)
            issued_certificate_path(home.root).write_bytes(certificate_pem(issued))
            ca_certificate_path(home.root).write_bytes(ca.certificate_pem())
            listen = f"{host}:{free_port(socket.SOCK_DGRAM, host)}"
            api = f"{host}:{free_port(socket.SOCK_STREAM, host)}"
            homes.append((home, Member(report.node_id, key.public, listen), api))
        genesis = Genesis(origin, tuple(m for _, m, _ in homes))
        entries = []
        for home, member, api in homes:
            peers = [f"{m.node_id}@{m.address}" for _, m, _ in homes if m.node_id != member.node_id]
            home.config_file.write_text(_config_text(origin, member.address, api, peers))
            (home.config_file.parent / "genesis.json").write_text(genesis.to_json())
            entries.append({"id": member.node_id, "home": str(home.root), "listen": member.address, "api": api})
        manifest["origins"].append({"origin": origin, "nodes": entries})  # type: ignore[attr-defined]
    (out / "testnet.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


@click.command("testnet", cls=OneLineCommand)
@click.option("--nodes", type=int, default=4, show_default=True, help="nodes per origin")
@click.option("--origins", type=int, default=1, show_default=True, help="number of origins")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True, help="a new directory")
@click.option("--host", default="127.0.0.1", show_default=True, help="address every node binds")
def testnet_cmd(nodes: int, origins: int, out: Path, host: str) -> None:
    """Write the homes of a local network of ORIGINS origins of NODES nodes, and print how to start it."""
    if not 1 <= origins <= len(DEFAULT_ORIGINS):
        raise ConfigError(f"--origins must be between 1 and {len(DEFAULT_ORIGINS)}")
    manifest = make_testnet(out, nodes, list(DEFAULT_ORIGINS[:origins]), host)
    click.echo(f"wrote {out}/testnet.json")
    for entry in manifest["origins"]:  # type: ignore[attr-defined]
        click.echo(f"# origin {entry['origin']}")
        for n in entry["nodes"]:
            click.echo(f"python -m node start --origin {entry['origin']} --home {n['home']}   # api http://{n['api']}")


COMMANDS = [testnet_cmd]
