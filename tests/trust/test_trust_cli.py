"""`node certs ...` end to end, as a user runs it (separate processes, real files)."""

import json
import os
import stat
import subprocess
import sys

import pytest
from cryptography import x509

from node.trust import load_certificate, verify_issued

ORIGIN = "alpha.example"


@pytest.fixture
def node(capsys, monkeypatch):
    """Run `node certs ARGS` through the real entry point (in-process: a subprocess costs seconds here)."""
    from node.cli import main

    def run(*args):
        monkeypatch.setattr(sys, "argv", ["node", "certs", *args])
        capsys.readouterr()
        with pytest.raises(SystemExit) as info:
            main()
        out, err = capsys.readouterr()
        return info.value.code, out, err

    return run


def test_a_real_process_exits_2_with_one_line(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "node", "certs", "show", str(tmp_path / "none.crt")], capture_output=True, text=True
    )
    assert result.returncode == 2 and result.stderr.strip().count("\n") == 0
    assert "cannot read certificate" in result.stderr


@pytest.fixture
def ca_dir(tmp_path, node):
    path = tmp_path / "certs" / ORIGIN
    code, out, err = node("init-ca", "--origin", ORIGIN, "--out", str(path))
    assert code == 0, err
    assert "fingerprint:" in out
    return path


def test_init_issue_show_revoke(tmp_path, ca_dir, node):
    assert stat.S_IMODE(os.stat(ca_dir / "ca.key").st_mode) == 0o600
    ca_cert = load_certificate((ca_dir / "ca.crt").read_bytes())
    limits = ca_cert.extensions.get_extension_for_class(x509.NameConstraints).value
    assert limits.permitted_subtrees == [x509.DNSName(ORIGIN)]  # the CA may only name the origin's hosts
    home = tmp_path / "home"
    from node.runtime.home import Home, init_home

    init_home(Home(home), ORIGIN)
    csr = tmp_path / "node.csr"
    code, _, err = node("csr", "--home", str(home), "--out", str(csr))
    assert code == 0, err
    code, pem, err = node("issue", "--ca", str(ca_dir), "--csr", str(csr), "--lifetime", "2h")
    assert code == 0, err
    cert = load_certificate(pem.encode())
    ca = load_certificate((ca_dir / "ca.crt").read_bytes())
    identity = verify_issued(
        cert,
        ca=ca,
        origin=ORIGIN,
        now=cert.not_valid_before_utc.replace(microsecond=0)
        + (cert.not_valid_after_utc - cert.not_valid_before_utc) / 2,
    )
    (tmp_path / "node.crt").write_text(pem)
    code, summary, err = node("show", str(tmp_path / "node.crt"))
    assert code == 0, err
    for line in (
        f"node id:     {identity.node_id}",
        f"origin:      {ORIGIN}",
        f"serial:      {cert.serial_number}",
        "valid until:",
        "issuer:      O=alpha.example",
        "fingerprint:",
    ):
        assert line in summary, summary
    code, summary, _ = node("show", str(ca_dir / "ca.crt"))
    assert code == 0 and "origin CA" in summary
    # a second issuance gets another serial; both are in the register
    code, pem2, _ = node("issue", "--ca", str(ca_dir), "--csr", str(csr))
    assert load_certificate(pem2.encode()).serial_number != cert.serial_number
    assert len(json.loads((ca_dir / "issued.json").read_text())) == 2
    code, out, err = node("revoke", "--ca", str(ca_dir), "--serial", str(cert.serial_number))
    assert code == 0 and identity.node_id in out, err
    code, out, err = node("revoke", "--ca", str(ca_dir), "--node", identity.node_id)
    assert code == 0 and "2 certificate(s)" in out, err
    revoked = json.loads((ca_dir / "revoked.json").read_text())
    assert revoked == {"serials": [cert.serial_number], "node_ids": [identity.node_id]}


def test_tokens_are_printed_once_and_stored_hashed(ca_dir, node):
    code, token, err = node("token", "--ca", str(ca_dir), "--ttl", "10m")
    assert code == 0 and token.startswith("ntk_"), err
    stored = (ca_dir / "tokens.json").read_text()
    assert token.strip() not in stored and len(json.loads(stored)) == 1


@pytest.mark.parametrize(
    "args, words",
    [
        (["init-ca", "--origin", "Not An Origin", "--out", "{tmp}/x"], "not a valid origin"),
        (["init-ca", "--origin", ORIGIN, "--out", "{ca}"], "refusing to replace a CA key"),
        (["issue", "--ca", "{tmp}/nowhere", "--csr", "{tmp}/c.csr"], "is not a CA directory"),
        (["issue", "--ca", "{ca}", "--csr", "{tmp}/missing.csr"], "cannot read CSR"),
        (["issue", "--ca", "{ca}", "--csr", "{ca}/ca.crt"], "not a certificate signing request"),
        (["issue", "--ca", "{ca}", "--csr", "{tmp}/beta.csr"], "asks for origin 'beta.example'"),
        (["issue", "--ca", "{ca}", "--csr", "{tmp}/beta.csr", "--lifetime", "soon"], "not a duration"),
        (["show", "{ca}/tokens.json"], "not a certificate"),
        (["revoke", "--ca", "{ca}"], "exactly one of"),
        (["revoke", "--ca", "{ca}", "--serial", "12345"], "was not issued by this CA"),
        (["revoke", "--ca", "{ca}", "--node", "zz"], "is not a node id"),
        (["issue", "--ca", "{ca}"], "Missing option"),
    ],
)
def test_bad_input_is_one_clear_line_exit_2(tmp_path, ca_dir, node, args, words):
    from node.crypto import PrivateKey
    from node.trust import make_csr
    from node.trust.certs import csr_pem

    (tmp_path / "beta.csr").write_bytes(csr_pem(make_csr(PrivateKey.from_seed(b"cli"), "beta.example")))
    (ca_dir / "tokens.json").write_text("{}\n")
    code, out, err = node(*[a.format(tmp=tmp_path, ca=ca_dir) for a in args])
    assert code == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and words in lines[0], err
    assert "Traceback" not in err
