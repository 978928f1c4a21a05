"""The generated server certificate is renewed before it ends, by the same CA; a certificate with
time left is kept. The proxy role's certificate tasks, run for real on this machine (they run on the
controller); the certificate near its end is one signed by that CA for an hour."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

from tests.conftest import PROJECT_ROOT
from tests.helpers.certificates import days_left, fingerprint, openssl, sign_for_no_time


def make_certificates(tool_env, folder: Path) -> str:
    playbook = folder / "certificates.yml"
    play = {
        "hosts": "localhost",
        "gather_facts": False,
        "vars": {"proxy_ca_dir": str(folder / "ca"), "proxy_domain": "mlenv.test"},
        "tasks": [{"ansible.builtin.include_role": {"name": "proxy", "tasks_from": "certificates"}}],
    }
    playbook.write_text(yaml.safe_dump([play]))
    env = {**tool_env, "ANSIBLE_ROLES_PATH": str(PROJECT_ROOT / "ansible/roles")}
    result = subprocess.run(
        ["ansible-playbook", "-i", "localhost,", "-c", "local",
         "-e", "ansible_python_interpreter={{ ansible_playbook_python }}", str(playbook)],
        env=env, capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:]
    return result.stdout


def test_a_certificate_near_its_end_is_renewed_by_the_same_ca_and_one_with_time_left_is_kept(tool_env, tmp_path):
    make_certificates(tool_env, tmp_path)
    ca_dir = tmp_path / "ca"
    ca, server = ca_dir / "ca.crt", ca_dir / "server.crt"
    first_ca, first_server = fingerprint(ca), fingerprint(server)
    assert days_left(server) == 396  # 397 days, less the minutes since
    again = make_certificates(tool_env, tmp_path)
    assert "Generate the CA key" not in again and fingerprint(server) == first_server
    # As if 396 days had passed: the same key and CA, an hour left.
    sign_for_no_time(ca_dir / "server.csr", ca_dir, server)
    assert days_left(server) == -1 or days_left(server) == 0
    renewed = make_certificates(tool_env, tmp_path)
    assert "Sign the server certificate with the CA" in renewed
    assert fingerprint(ca) == first_ca, "the CA changed: every client would have to trust a new one"
    assert days_left(server) == 396
    openssl("verify", "-CAfile", str(ca), str(server))
    assert "DNS:*.mlenv.test" in openssl("x509", "-noout", "-ext", "subjectAltName", "-in", str(server))
