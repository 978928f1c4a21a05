"""The data host of the TLS scenario: PostgreSQL and the object store present the internal CA's
certificates, and the clients on the other host reach them only over TLS."""

from __future__ import annotations

from tests.helpers.hostpython import run_python

testinfra_hosts = ["podman://mlenv-test-tls-data"]
journal_units = ["postgresql@15-main", "mlenv-object-store"]
CA = "/etc/mlenv/internal-ca.crt"

TLS_HANDSHAKE = """
import json, os, socket, ssl
context = ssl.create_default_context(cafile=os.environ["CA"])
with socket.create_connection(("127.0.0.1", 8333), timeout=10) as raw:
    with context.wrap_socket(raw, server_hostname=os.environ["NAME"]) as tls:
        print(json.dumps({"version": tls.version(), "subject": dict(x[0] for x in tls.getpeercert()["subject"])}))
"""


def psql(host, sql: str) -> str:
    return host.check_output(f"runuser -u postgres -- psql -XAtc {sql!r}")


def test_the_server_speaks_tls_with_the_internal_certificate(host):
    assert psql(host, "SHOW ssl") == "on"
    assert psql(host, "SHOW ssl_cert_file") == "/etc/postgresql/mlenv-tls/postgresql.crt"
    key = host.file("/etc/postgresql/mlenv-tls/postgresql.key")
    assert (key.user, key.mode) == ("postgres", 0o600)
    issuer = host.check_output("openssl x509 -noout -issuer -in /etc/postgresql/mlenv-tls/postgresql.crt")
    assert "internal CA" in issuer


def test_clients_off_the_host_may_connect_over_tls_only(host):
    rules = [line.split("|") for line in psql(host, "SELECT type, address FROM pg_hba_file_rules").splitlines()]
    remote = [kind for kind, address in rules if address not in ("", "127.0.0.1", "::1")]
    assert remote, rules
    assert set(remote) == {"hostssl"}, rules


def test_the_other_hosts_connections_are_encrypted(host):
    # MLflow and the trigger service keep connections open (the other host's tests used them).
    found = psql(
        host,
        "SELECT a.usename, s.ssl, s.version FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) "
        "WHERE a.usename IN ('mlflow', 'mlenv_loop') GROUP BY 1, 2, 3",
    ).splitlines()
    assert {line.split("|")[0] for line in found} == {"mlflow", "mlenv_loop"}, found
    assert all(line.split("|")[1:2] == ["t"] and line.split("|")[2].startswith("TLSv1.") for line in found), found


def test_the_s3_api_answers_over_tls_with_the_internal_certificate(host):
    answer = run_python(host, "python3", TLS_HANDSHAKE, {"CA": CA, "NAME": "mlenv-test-tls-data"})
    assert answer["version"] in ("TLSv1.2", "TLSv1.3")
    assert answer["subject"] == {"commonName": "mlenv-test-tls-data"}
    key = host.file("/etc/mlenv-object-store/tls/object-store.key")
    assert (key.user, key.mode) == ("objectstore", 0o600)
