"""`node certs init-ca|token|csr|issue|show|revoke`: the origin CA, offline.

A CA directory holds `ca.key` (0600), `ca.crt` and its state (`issued.json`, `revoked.json`,
`tokens.json`); see node/trust/ca_dir.py. Heavy imports (cryptography) happen inside the commands so
`node --help` stays fast.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import secrets
from pathlib import Path
from typing import Any

import click

from node.config import resolve_home
from node.errors import ConfigError, InvalidInput
from node.runtime.cli_support import OneLineCommand, OneLineGroup, home_option, settings_for
from node.runtime.home import Home

_DURATION = re.compile(r"^(\d+)([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_duration(text: str, what: str) -> dt.timedelta:
    match = _DURATION.match(text.strip())
    if not match or int(match.group(1)) == 0:
        raise ConfigError(f"{what} {text!r} is not a duration like 90s, 30m, 24h or 7d")
    return dt.timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc.strerror}") from exc


def _directory(path: Path) -> Any:
    from node.trust.ca_dir import CaDirectory

    return CaDirectory(path)


@click.group("certs", cls=OneLineGroup)
def certs_group() -> None:
    """The origin CA: create it, issue and revoke node certificates, make tokens and CSRs, show certificates."""


@certs_group.command("init-ca", cls=OneLineCommand)
@click.option("--origin", required=True, help="the origin the CA serves (alpha.example)")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True, help="CA directory")
@click.option("--lifetime", default="1825d", show_default=True, help="CA certificate lifetime")
def init_ca(origin: str, out: Path, lifetime: str) -> None:
    """Create an origin CA (ECDSA P-256, limited to the origin's names) in OUT."""
    from node.trust.certs import check_origin
    from node.trust.transparency import certificate_fingerprint

    check_origin(origin)
    ca = _directory(out).create(origin, _now(), parse_duration(lifetime, "--lifetime"))
    click.echo(f"CA for {origin} in {out} (key {out / 'ca.key'}, mode 0600)")
    click.echo(f"fingerprint: {certificate_fingerprint(ca.certificate)}")


@certs_group.command("token", cls=OneLineCommand)
@click.option("--ca", "ca_dir", type=click.Path(file_okay=False, path_type=Path), required=True, help="CA directory")
@click.option("--ttl", default="1h", show_default=True, help="how long the token stays valid")
def token_cmd(ca_dir: Path, ttl: str) -> None:
    """Make a one-time bootstrap token (printed once; only its hash is kept)."""
    directory = _directory(ca_dir)
    authority = directory.authority(secrets.token_bytes)
    token = authority.tokens.issue(secrets.token_bytes, _now(), parse_duration(ttl, "--ttl"))
    authority.tokens.prune(_now())
    directory.save(authority)
    click.echo(token)


@certs_group.command("csr", cls=OneLineCommand)
@home_option
@click.option("--origin", help="origin to ask for (default: the home's configured origin)")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="write here instead of stdout")
def csr_cmd(home: str | None, origin: str | None, out: Path | None) -> None:
    """Make a certificate signing request for the home's node key."""
    from node.trust.certs import csr_pem, make_csr

    origin = origin or settings_for({"home": home}).settings.origin
    if origin is None:
        raise ConfigError("no origin: give --origin or set origin in the home's config/node.toml")
    key = Home(resolve_home(home, os.environ)[0]).load_key()
    _emit(csr_pem(make_csr(key, origin)), out)


def _emit(pem: bytes, out: Path | None) -> None:
    if out is None:
        click.echo(pem.decode(), nl=False)
    else:
        out.write_bytes(pem)
        click.echo(f"wrote {out}", err=True)


@certs_group.command("issue", cls=OneLineCommand)
@click.option("--ca", "ca_dir", type=click.Path(file_okay=False, path_type=Path), required=True, help="CA directory")
@click.option("--csr", "csr_file", type=click.Path(dir_okay=False, path_type=Path), required=True, help="CSR file")
@click.option("--lifetime", default="24h", show_default=True, help="certificate lifetime")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="write here instead of stdout")
def issue_cmd(ca_dir: Path, csr_file: Path, lifetime: str, out: Path | None) -> None:
    """Issue a node certificate from a CSR (offline), with a fresh unique serial."""
    from node.trust.authority import csr_origins
    from node.trust.certs import certificate_pem, load_csr

    duration = parse_duration(lifetime, "--lifetime")
    directory = _directory(ca_dir)
    authority = directory.authority(secrets.token_bytes)
    csr = load_csr(_read(csr_file, "CSR"))
    if not csr.is_signature_valid:
        raise InvalidInput(f"{csr_file}: the CSR signature is invalid")
    foreign = csr_origins(csr) - {authority.origin}
    if foreign:
        raise InvalidInput(f"{csr_file} asks for origin {sorted(foreign)[0]!r}; this CA serves {authority.origin!r}")
    cert = authority.sign(csr, _now(), duration)
    _emit(certificate_pem(cert), out)


@certs_group.command("show", cls=OneLineCommand)
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
def show_cmd(file: Path) -> None:
    """Print a readable summary of a certificate (node or CA)."""
    from node.trust.certs import load_certificate
    from node.trust.transparency import certificate_fingerprint
    from node.trust.verify import identity_of

    cert = load_certificate(_read(file, "certificate"))
    constraints = [e.value for e in cert.extensions if e.oid.dotted_string == "2.5.29.19"]
    is_ca = bool(constraints) and bool(getattr(constraints[0], "ca", False))
    if is_ca:
        click.echo(f"kind:        origin CA ({cert.subject.rfc4514_string()})")
    else:
        identity = identity_of(cert, ca_issued=cert.issuer != cert.subject)
        click.echo(f"kind:        {'CA-issued' if identity.ca_issued else 'self-signed'} node certificate")
        click.echo(f"node id:     {identity.node_id}")
        click.echo(f"origin:      {identity.origin}")
    click.echo(f"serial:      {cert.serial_number} (0x{cert.serial_number:x})")
    click.echo(f"valid from:  {cert.not_valid_before_utc.isoformat()}")
    click.echo(f"valid until: {cert.not_valid_after_utc.isoformat()}")
    click.echo(f"issuer:      {cert.issuer.rfc4514_string()}")
    click.echo(f"fingerprint: {certificate_fingerprint(cert)}")


@certs_group.command("revoke", cls=OneLineCommand)
@click.option("--ca", "ca_dir", type=click.Path(file_okay=False, path_type=Path), required=True, help="CA directory")
@click.option("--serial", type=int, help="revoke one certificate by serial (decimal)")
@click.option("--node", "node_id", help="revoke every certificate of a node id")
@click.option(
    "--chain-home", type=click.Path(file_okay=False, path_type=Path),
    help="also record the revocation on the chain through the running member node of this home (offline CAs)",
)
def revoke_cmd(ca_dir: Path, serial: int | None, node_id: str | None, chain_home: Path | None) -> None:
    """Add a certificate (--serial) or a node (--node) to the CA's revocation list (revoked.json).

    A CA node running on that directory puts the revocation on the chain itself; for a CA kept
    offline, --chain-home sends it (signed with the CA key) through a running member node."""
    from node.trust.errors import TrustUsageError

    if (serial is None) == (node_id is None):
        raise ConfigError("give exactly one of --serial N or --node ID")
    directory = _directory(ca_dir)
    authority = directory.authority(secrets.token_bytes)
    now = _now()
    if serial is not None:
        try:
            authority.revoke_serial(serial, now)
        except TrustUsageError as exc:
            raise InvalidInput(str(exc)) from exc
        node_id = authority.issued[serial].node_id
        click.echo(f"revoked serial {serial} (node {node_id})")
    else:
        assert node_id is not None
        if not re.fullmatch(r"[0-9a-f]{20}", node_id):
            raise InvalidInput(f"{node_id!r} is not a node id (20 hex characters)")
        serials = authority.revoke_node(node_id, now)
        click.echo(f"revoked node {node_id} ({len(serials)} certificate(s) issued to it)")
    click.echo(f"revocation list: {directory.revoked_file}")
    if chain_home is not None:
        _revoke_on_chain(authority, chain_home, node_id, serial, now)


def _revoke_on_chain(authority: Any, home_path: Path, node_id: str, serial: int | None, now: dt.datetime) -> None:
    """Post the CA-signed revocation record through the member node of `home_path` and wait for its receipt."""
    import time

    from node.actions.client import ActionClient
    from node.actions.errors import ClientError
    from node.trust.chain_state import REVOKE_PATH, revoke_args

    settings = settings_for({"home": str(home_path)}).settings
    key = Home(settings.home).load_key()
    args = revoke_args(origin=authority.origin, node_id=node_id, serial=serial, revoked_at=now,
                       reason="revoked by the origin CA (offline)", ca_key=authority.ca.key)
    client = ActionClient(key, f"http://{settings.api}", clock=time.time_ns, origin=authority.origin)
    try:
        receipt = client.send(client.build(REVOKE_PATH, args), wait=True)
    except ClientError as exc:
        raise InvalidInput(f"the revocation was not put on the chain: {exc}") from exc
    finally:
        client.close()
    if isinstance(receipt, dict) and receipt.get("reason") == "exists":  # e.g. a running CA node was quicker
        click.echo("revocation already on the chain")
        return
    if not isinstance(receipt, dict) or not receipt.get("ok"):
        raise InvalidInput(f"the chain refused the revocation: {receipt}")
    click.echo(f"revocation recorded on the chain (block {receipt.get('block')})")


COMMANDS = [certs_group]
