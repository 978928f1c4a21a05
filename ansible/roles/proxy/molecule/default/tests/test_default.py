"""The proxy role on a real systemd host: TLS with the generated CA, redirects, headers, unknown names."""

from __future__ import annotations

import hashlib
import json
import ssl
import time

from tests.helpers.hostpython import http_request, http_status
from tests.helpers.molecule import ephemeral_dir, podman_hosts

testinfra_hosts = podman_hosts()
journal_units = ["nginx", "prometheus"]
CA = "/etc/mlenv-proxy/tls/ca.crt"
SITE = "https://echo.mlenv.test/"


def test_site_answers_over_tls_trusted_through_the_generated_ca(host):
    assert http_status(host, SITE, ca_file=CA) == 200


def test_certificate_is_not_trusted_without_the_ca(host):
    answer = http_request(host, SITE)
    assert answer["status"] == 0
    assert "CERTIFICATE_VERIFY_FAILED" in answer["error"]


def test_plain_http_only_redirects_to_https(host):
    answer = http_request(host, "http://echo.mlenv.test/some/path?q=1")
    assert answer["status"] == 301
    assert answer["headers"]["Location"] == "https://echo.mlenv.test/some/path?q=1"


def test_security_headers_are_sent(host):
    headers = http_request(host, SITE, ca_file=CA)["headers"]
    assert headers["Strict-Transport-Security"].startswith("max-age=31536000")
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["X-Frame-Options"] == "SAMEORIGIN"
    assert "nginx/" not in headers.get("Server", "")


def test_unknown_host_name_gets_no_answer(host):
    assert http_status(host, "https://unknown.mlenv.test/", ca_file=CA) == 0


def test_private_key_stays_private_and_the_ca_key_never_reaches_the_host(host):
    key = host.file("/etc/mlenv-proxy/tls/server.key")
    assert (key.user, key.mode) == ("root", 0o600)
    assert not host.file("/etc/mlenv-proxy/tls/ca.key").exists
    assert (ephemeral_dir() / "secrets/ca/ca.key").stat().st_mode & 0o777 == 0o600


def test_only_the_proxy_listens_beyond_loopback(host):
    public = [spec for spec in host.socket.get_listening_sockets() if spec.startswith("tcp://0.0.0.0:")]
    assert sorted(public) == ["tcp://0.0.0.0:22", "tcp://0.0.0.0:443", "tcp://0.0.0.0:80"]


def test_restarts_by_itself_after_kill_9(host):
    before = host.check_output("systemctl show -p MainPID --value nginx")
    host.run("systemctl kill --signal=KILL nginx")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and http_status(host, SITE, ca_file=CA) != 200:
        time.sleep(1)
    assert host.check_output("systemctl show -p MainPID --value nginx") not in (before, "0")
    assert http_status(host, SITE, ca_file=CA) == 200


# The landing page (portal role) at the bare domain.
HOME = "https://mlenv.test/"


def home_password() -> str:
    return "mlenv:" + (ephemeral_dir() / "secrets/portal/password").read_text().strip()


def page_status(host) -> dict:
    answer = http_request(host, HOME + "api/status", ca_file=CA, basic_auth=home_password())
    assert answer["status"] == 200, answer
    return json.loads(answer["body"])


def test_the_landing_page_is_behind_basic_auth(host):
    assert http_status(host, HOME, ca_file=CA) == 401
    assert http_status(host, HOME, ca_file=CA, basic_auth="mlenv:wrong-password") == 401
    page = http_request(host, HOME, ca_file=CA, basic_auth=home_password())
    assert page["status"] == 200 and page["headers"]["Content-Type"].startswith("text/html")
    assert '<tr data-service="echo" data-health="up">' in page["body"]
    # The page lists the other sites, never itself, and carries no secret.
    assert 'data-service="portal"' not in page["body"]
    assert home_password().split(":", 1)[1] not in page["body"]


def test_the_landing_page_offers_the_ca_its_sites_are_signed_by(host):
    offered = http_request(host, HOME + "ca.crt", ca_file=CA, basic_auth=home_password())
    assert offered["status"] == 200 and offered["body"] == host.file(CA).content_string
    der = ssl.PEM_cert_to_DER_cert(offered["body"])
    fingerprint = hashlib.sha256(der).hexdigest().upper()
    page = http_request(host, HOME, ca_file=CA, basic_auth=home_password())["body"]
    assert ":".join(fingerprint[index : index + 2] for index in range(0, 64, 2)) in page


def test_the_landing_page_shows_a_stopped_service_as_down(host):
    assert [(one["service"], one["up"]) for one in page_status(host)["services"]] == [("echo", True)]
    host.run("systemctl stop echo-upstream")
    try:
        time.sleep(2.5)  # past the page's cache of results
        down = page_status(host)["services"][0]
        assert not down["up"] and down["detail"].startswith("unreachable"), down
    finally:
        host.run("systemctl start echo-upstream")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not page_status(host)["services"][0]["up"]:
        time.sleep(1)
    assert page_status(host)["services"][0]["up"]


def test_prometheus_scrapes_this_hosts_exporters_and_the_database_one_stays_off(host):
    for unit in ("prometheus", "prometheus-node-exporter", "prometheus-nginx-exporter"):
        assert host.service(unit).is_running and host.service(unit).is_enabled, unit
    database = host.service("prometheus-postgres-exporter")
    assert not database.is_running and not database.is_enabled
    assert not host.socket("tcp://0.0.0.0:9090").is_listening
    deadline, health = time.monotonic() + 60, {}
    while time.monotonic() < deadline:
        answer = http_request(host, "http://127.0.0.1:9090/api/v1/targets")
        if answer["status"] == 200:
            targets = json.loads(answer["body"])["data"]["activeTargets"]
            health = {target["labels"]["job"]: target["health"] for target in targets}
            if set(health.values()) == {"up"}:
                break
        time.sleep(2)
    assert health == {"prometheus": "up", "node": "up", "nginx": "up"}, health
    rules = json.loads(http_request(host, "http://127.0.0.1:9090/api/v1/rules")["body"])["data"]["groups"][0]["rules"]
    assert {"ServiceDown", "CertificateExpiresSoon"} <= {rule["name"] for rule in rules}
