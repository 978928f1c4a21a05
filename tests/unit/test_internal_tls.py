"""TLS between hosts: the internal CA's certificates (signed on the controller, renewed before their end,
re-signed when the names change) and what each client role does with `mlenv_internal_tls`: verify the
database (sslmode=verify-full) and the object store (the CA as the S3 bundle) against the internal CA.

The certificate tasks run for real on this machine (the controller is also the host here); the scenario
`internal_tls:default` converges two hosts that talk over these certificates."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import PROJECT_ROOT, ROLES_DIR
from tests.helpers.certificates import days_left, fingerprint, openssl, sign_for_no_time

CA_FILE = "/etc/mlenv/internal-ca.crt"
WILDCARD = "0.0.0.0"  # noqa: S104 - a listen address in a list of names, not a bind


def playbook(tool_env, folder: Path, play: dict, *, check: bool = True) -> subprocess.CompletedProcess:
    path = folder / "play.yml"
    path.write_text(yaml.safe_dump([{"hosts": "localhost", "gather_facts": False, **play}]))
    env = {**tool_env, "ANSIBLE_ROLES_PATH": str(ROLES_DIR), "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
           "ANSIBLE_LOAD_CALLBACK_PLUGINS": "true"}  # fmt: skip
    result = subprocess.run(
        ["ansible-playbook", "-i", "localhost,", "-c", "local",
         "-e", "ansible_python_interpreter={{ ansible_playbook_python }}", str(path)],
        env=env, capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip
    if check:
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def issue(tool_env, folder: Path, names: list[str]) -> subprocess.CompletedProcess:
    variables = {
        "internal_tls_ca_dir": str(folder / "ca"),
        "internal_tls_ca_file": str(folder / "trust/ca.crt"),
        "internal_tls_service": "db",
        "internal_tls_names": names,
        "internal_tls_dest_dir": str(folder / "host"),
    }
    task = {"ansible.builtin.include_role": {"name": "internal_tls", "tasks_from": "certificate"}}
    return playbook(tool_env, folder, {"vars": variables, "tasks": [task]})


def test_a_service_certificate_names_its_addresses_and_is_kept_until_its_end(tool_env, tmp_path):
    issue(tool_env, tmp_path, ["db1.ml.example.internal", "10.0.1.10", WILDCARD, "localhost", "127.0.0.1"])
    ca, cert, key = tmp_path / "trust/ca.crt", tmp_path / "host/db.crt", tmp_path / "host/db.key"
    openssl("verify", "-CAfile", str(ca), str(cert))
    names = openssl("x509", "-noout", "-ext", "subjectAltName", "-in", str(cert))
    assert "DNS:db1.ml.example.internal" in names and "IP Address:10.0.1.10" in names
    assert WILDCARD not in names  # a wildcard listen address names nothing
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    assert (tmp_path / "ca/ca.key").stat().st_mode & 0o077 == 0
    first_ca, first_cert = fingerprint(ca), fingerprint(cert)
    assert days_left(cert) == 396

    issue(tool_env, tmp_path, ["db1.ml.example.internal", "10.0.1.10", WILDCARD, "localhost", "127.0.0.1"])
    assert fingerprint(cert) == first_cert

    # As if 396 days had passed: the same key and CA, no time left.
    host_dir = tmp_path / "ca/hosts/localhost"
    sign_for_no_time(host_dir / "db.csr", tmp_path / "ca", host_dir / "db.crt")
    issue(tool_env, tmp_path, ["db1.ml.example.internal", "10.0.1.10", WILDCARD, "localhost", "127.0.0.1"])
    assert fingerprint(cert) != first_cert and days_left(cert) == 396
    assert fingerprint(ca) == first_ca, "the CA changed: every client would have to trust a new one"

    issue(tool_env, tmp_path, ["db2.ml.example.internal"])
    assert "DNS:db2.ml.example.internal" in openssl("x509", "-noout", "-ext", "subjectAltName", "-in", str(cert))
    openssl("verify", "-CAfile", str(ca), str(cert))


def test_a_certificate_without_names_is_refused_before_anything_is_made(tool_env, tmp_path):
    variables = {"internal_tls_ca_dir": str(tmp_path / "ca"), "internal_tls_service": "db",
                 "internal_tls_names": [], "internal_tls_dest_dir": str(tmp_path / "host")}  # fmt: skip
    task = {"ansible.builtin.include_role": {"name": "internal_tls", "tasks_from": "certificate"}}
    failed = playbook(tool_env, tmp_path, {"vars": variables, "tasks": [task]}, check=False)
    assert failed.returncode != 0
    assert "internal_tls_names (the names and addresses" in failed.stdout
    assert not (tmp_path / "ca").exists()


# What each client role does with TLS between hosts: (role, the variables that decide, the names to render).
CLIENTS = {
    "mlflow": (
        "mlflow_s3_endpoint",
        ["_mlflow_db_tls_environment", "mlflow_s3_ca_bundle", "_mlflow_trusts_internal_ca"],
    ),
    "label_studio": ("label_studio_s3_endpoint", ["_label_studio_tls_environment", "_label_studio_trusts_internal_ca"]),
    "ml_loop": ("ml_loop_s3_endpoint", ["_ml_loop_tls_environment", "_ml_loop_trusts_internal_ca"]),
}


def client_settings(tool_env, folder: Path, role: str, internal_tls: bool, endpoint: str) -> dict:
    endpoint_var, names = CLIENTS[role]
    # Read after the role's files: a later vars file wins (play vars would lose to vars files).
    given = folder / "given.yml"
    given.write_text(yaml.safe_dump({"mlenv_internal_tls": internal_tls, endpoint_var: endpoint}))
    play = {
        "vars_files": [
            str(ROLES_DIR / role / "defaults/main.yml"),
            str(ROLES_DIR / role / "vars/main.yml"),
            str(given),
        ],
        "tasks": [{"ansible.builtin.debug": {"msg": {name: "{{ " + name + " }}" for name in names}}}],
    }
    result = playbook(tool_env, folder, play)
    task = json.loads(result.stdout)["plays"][0]["tasks"][0]
    return task["hosts"]["localhost"]["msg"]


@pytest.mark.parametrize("role", sorted(CLIENTS))
def test_a_client_verifies_the_database_and_the_object_store_against_the_internal_ca(tool_env, tmp_path, role):
    settings = client_settings(tool_env, tmp_path, role, True, "https://s3-1.ml.example.internal:8333")
    environment = settings[CLIENTS[role][1][0]]
    assert environment["PGSSLMODE"] == "verify-full" and environment["PGSSLROOTCERT"] == CA_FILE
    if role == "mlflow":
        assert settings["mlflow_s3_ca_bundle"] == CA_FILE
    else:
        assert environment["AWS_CA_BUNDLE"] == CA_FILE
    if role == "label_studio":  # Label Studio's own settings, besides libpq's
        assert environment["POSTGRE_SSL_MODE"] == "verify-full" and environment["POSTGRE_SSLROOTCERT"] == CA_FILE
    assert str(next(value for name, value in settings.items() if name.endswith("trusts_internal_ca"))) == "True"


@pytest.mark.parametrize("role", sorted(CLIENTS))
def test_a_client_on_one_host_changes_nothing(tool_env, tmp_path, role):
    settings = client_settings(tool_env, tmp_path, role, False, "http://127.0.0.2:8333")
    assert settings[CLIENTS[role][1][0]] == {}
    assert str(next(value for name, value in settings.items() if name.endswith("trusts_internal_ca"))) == "False"


def test_an_http_object_store_gets_no_bundle_even_with_internal_tls(tool_env, tmp_path):
    settings = client_settings(tool_env, tmp_path, "ml_loop", True, "http://127.0.0.2:8333")
    assert "AWS_CA_BUNDLE" not in settings["_ml_loop_tls_environment"]
    assert settings["_ml_loop_tls_environment"]["PGSSLMODE"] == "verify-full"


def test_the_sample_inventory_turns_tls_between_hosts_on_and_names_what_certificates_carry():
    settings = yaml.safe_load((PROJECT_ROOT / "inventories/sample/group_vars/all/mlenv.yml").read_text())
    hosts = (PROJECT_ROOT / "inventories/sample/hosts.yml").read_text()
    assert settings["mlenv_internal_tls"] is True
    assert settings["mlenv_object_store_endpoint"].startswith("https://")
    assert settings["mlenv_db_host"] in hosts
    local = yaml.safe_load((PROJECT_ROOT / "inventories/local/group_vars/all/mlenv.yml").read_text())
    assert not local.get("mlenv_internal_tls", False)  # one host: loopback only
