"""`node testnet`: the homes of a local test network (origins of N nodes on 127.0.0.1).

Each node gets a home (key, config with its listen/API addresses and its peers) and each origin a
genesis file naming its members, so `node start --home DIR/<origin>/node<i>` brings it up.  A
manifest (`DIR/testnet.json`) lists everything for scripts and simulations.

Trust: node0 of each origin holds the origin CA (`node0/ca/`) and issues certificates online; the
other nodes start without one, knowing only the CA node's id and address and the CA certificate's
fingerprint (and, with `--tokens`, a one-time bootstrap token each; genesis members are pinned by
their keys, so they need none).  `--offline-certs` instead issues every certificate now, into the
homes, from a CA kept beside them (`DIR/<origin>/ca/`).
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
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
TOKEN_TTL = dt.timedelta(days=1)  # bootstrap tokens of a test network: start it within a day
CA_DIR_NAME = "ca"  # the CA directory inside node0's home (online issuance)

DEFAULT_ORIGINS = ("alpha.example", "beta.example", "gamma.example", "delta.example", "epsilon.example")


def free_port(kind: int, host: str) -> int:
    """A port that is free now for `kind` (SOCK_DGRAM for QUIC, SOCK_STREAM for HTTP)."""
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def _config_text(origin: str, listen: str, api: str, peers: list[str], trust: dict[str, str]) -> str:
    peer_lines = "".join(f'  "{p}",\n' for p in peers)
    trust_lines = "".join(f'{name} = "{value}"\n' for name, value in trust.items())
    return (
        "# Written by `node testnet`; edit freely.\n"
        f'origin = "{origin}"\n'
        f'listen = "{listen}"\n'
        f'api = "{api}"\n'
        f"peers = [\n{peer_lines}]\n"
        f"{trust_lines}"
    )



def make_testnet(
    out: Path,
    nodes: int,
    origins: list[str],
    host: str = "127.0.0.1",
    *,
    offline_certs: bool = False,
    tokens: bool = False,
    token_ttl: dt.timedelta = TOKEN_TTL,
) -> dict[str, object]:
    if nodes < 1 or nodes > 64:
        raise ConfigError("--nodes must be between 1 and 64")
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"{out} exists and is not empty; choose a new --out directory")
    if offline_certs and tokens:
        raise ConfigError("--tokens is for online issuance; leave out --offline-certs")
    from node.trust import CaDirectory, certificate_fingerprint, certificate_pem, make_csr  # heavy: only when used

    manifest: dict[str, object] = {"host": host, "origins": []}
    federation: list[tuple[str, str, list[Home]]] = []  # (origin, CA pin, homes) for the DNS wiring
    for origin in origins:
        PARSERS["origin"](origin)
        now = dt.datetime.now(dt.UTC)
        homes: list[tuple[Home, Member, str]] = []
        for i in range(nodes):
            home = Home(out / origin / f"node{i}")
            report = init_home(home, origin)
            listen = f"{host}:{free_port(socket.SOCK_DGRAM, host)}"
            api = f"{host}:{free_port(socket.SOCK_STREAM, host)}"
            homes.append((home, Member(report.node_id, home.load_key().public, listen), api))
        ca_home, ca_member, _ = homes[0]
        ca_dir = (out / origin / "ca") if offline_certs else (ca_home.root / CA_DIR_NAME)
        ca = CaDirectory(ca_dir).create(origin, now)
        fingerprint = certificate_fingerprint(ca.certificate)
        trust: dict[str, str] = {}
        if offline_certs:
            for home, _, _ in homes:
                issued = ca.issue(make_csr(home.load_key(), origin), now, lifetime=TESTNET_CERT_LIFETIME)
                issued_certificate_path(home.root).write_bytes(certificate_pem(issued))
                ca_certificate_path(home.root).write_bytes(ca.certificate_pem())
        else:
            trust = {"ca_node": f"{ca_member.node_id}@{ca_member.address}", "ca_fingerprint": fingerprint}
        authority = None if not tokens else CaDirectory(ca_dir).authority(secrets.token_bytes)
        genesis = Genesis(origin, tuple(m for _, m, _ in homes))
        entries = []
        for i, (home, member, api) in enumerate(homes):
            peers = [f"{m.node_id}@{m.address}" for _, m, _ in homes if m.node_id != member.node_id]
            node_trust = dict(trust)
            if not offline_certs and i == 0:
                node_trust["ca_dir"] = CA_DIR_NAME
            elif authority is not None:
                node_trust["bootstrap_token"] = authority.tokens.issue(secrets.token_bytes, now, token_ttl)
            home.config_file.write_text(_config_text(origin, member.address, api, peers, node_trust))
            (home.config_file.parent / "genesis.json").write_text(genesis.to_json())
            entries.append({"id": member.node_id, "home": str(home.root), "listen": member.address, "api": api})
        if authority is not None:
            CaDirectory(ca_dir).save(authority)  # only the tokens' hashes are kept by the CA
        federation.append((origin, ca_pin_hex(ca.certificate), [h for h, _, _ in homes]))
        manifest["origins"].append({  # type: ignore[attr-defined]
            "origin": origin, "nodes": entries,
            "ca": {
                "node": ca_member.node_id, "dir": str(ca_dir), "fingerprint": fingerprint, "online": not offline_certs,
            },
        })
    if len(origins) > 1:
        wire_federation(federation, manifest, host)
    (out / "testnet.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def ca_pin_hex(certificate: object) -> str:
    from node.federation.records import ca_pin  # heavy: only when used

    return ca_pin(certificate).hex()  # type: ignore[arg-type]


def wire_federation(origins: list[tuple[str, str, list[Home]]], manifest: dict[str, object], host: str) -> None:
    """Give every node a DNS responder and a federation endpoint on free ports, and point its
    resolver at the other origins' DNS responders (no other DNS), trusting their CA pins."""
    dns: dict[str, list[str]] = {}
    fed: dict[str, list[str]] = {}
    for origin, _, homes in origins:
        dns[origin] = [f"{host}:{free_port(socket.SOCK_DGRAM, host)}" for _ in homes]
        fed[origin] = [f"{host}:{free_port(socket.SOCK_DGRAM, host)}" for _ in homes]
    for origin, _, homes in origins:
        others = [(o, pin) for o, pin, _ in origins if o != origin]
        nameservers = [a for o, _ in others for a in dns[o]]
        for i, home in enumerate(homes):
            with home.config_file.open("a") as fh:
                fh.write(
                    f'dns = "{dns[origin][i]}"\n'
                    f'federation_listen = "{fed[origin][i]}"\n'
                    f"federation_origins = {json.dumps([o for o, _ in others])}\n"
                    f"federation_nameservers = {json.dumps(nameservers)}\n"
                    f"federation_pins = {json.dumps([f'{o}={pin}' for o, pin in others])}\n"
                )
    for entry in manifest["origins"]:  # type: ignore[attr-defined]
        entry["dns"] = dns[entry["origin"]]
        for i, node in enumerate(entry["nodes"]):
            node["dns"] = dns[entry["origin"]][i]
            node["federation"] = fed[entry["origin"]][i]


@click.command("testnet", cls=OneLineCommand)
@click.option("--nodes", type=int, default=4, show_default=True, help="nodes per origin")
@click.option("--origins", type=int, default=1, show_default=True, help="number of origins")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True, help="a new directory")
@click.option("--host", default="127.0.0.1", show_default=True, help="address every node binds")
@click.option("--offline-certs", is_flag=True, help="issue every certificate now instead of online by node0's CA")
@click.option("--tokens", is_flag=True, help="give each node a one-time bootstrap token (members need none)")
def testnet_cmd(nodes: int, origins: int, out: Path, host: str, offline_certs: bool, tokens: bool) -> None:
    """Write the homes of a local network of ORIGINS origins of NODES nodes, and print how to start it.

    By default node0 of each origin holds the origin CA and the others get their certificates from it
    when they start (start node0 first or not: they wait for it)."""
    if not 1 <= origins <= len(DEFAULT_ORIGINS):
        raise ConfigError(f"--origins must be between 1 and {len(DEFAULT_ORIGINS)}")
    manifest = make_testnet(
        out, nodes, list(DEFAULT_ORIGINS[:origins]), host, offline_certs=offline_certs, tokens=tokens
    )
    click.echo(f"wrote {out}/testnet.json")
    for entry in manifest["origins"]:  # type: ignore[attr-defined]
        click.echo(f"# origin {entry['origin']}")
        ca = entry["ca"]
        if ca["online"]:
            click.echo(f"# CA in {ca['dir']} (node {ca['node']}; fingerprint {ca['fingerprint']}): the others get")
            click.echo("# their certificates from it when they start, and wait for it while it is down")
        else:
            click.echo(f"# certificates issued offline by the CA in {ca['dir']}")
        if "dns" in entry:
            click.echo(f"# DNS for {entry['origin']} answered by its nodes at {', '.join(entry['dns'])}")
        for n in entry["nodes"]:
            click.echo(f"python -m node start --origin {entry['origin']} --home {n['home']}   # api http://{n['api']}")


COMMANDS = [testnet_cmd]
