"""The object_store role (SeaweedFS) on a real systemd host, used through its S3 API."""

from __future__ import annotations

import time

import pytest

from tests.helpers.hostpython import s3_probe
from tests.helpers.molecule import ephemeral_dir, podman_hosts, secret

testinfra_hosts = podman_hosts()
journal_units = ["mlenv-object-store"]
SERVICE = "mlenv-object-store"
ENDPOINT = "http://127.0.0.1:8333"
TOOLS_PYTHON = "/opt/mlenv/s3-tools/bin/python"


def keys(identity: str) -> tuple[str, str]:
    return secret(f"object_store/{identity}.access_key"), secret(f"object_store/{identity}.secret_key")


def probe(host, identity: str, bucket: str, *, secret: str | None = None) -> dict:
    access_key, secret_key = keys(identity)
    return s3_probe(
        host, TOOLS_PYTHON, endpoint=ENDPOINT, access_key=access_key, secret_key=secret or secret_key, bucket=bucket
    )


def listening_ports(host) -> dict[int, str]:
    sockets = host.socket.get_listening_sockets()
    return {int(spec.rsplit(":", 1)[1]): spec for spec in sockets if spec.startswith("tcp://")}


def test_service_runs_as_its_own_user(host):
    service = host.service(SERVICE)
    assert service.is_running and service.is_enabled
    user = host.check_output(f"ps -o user= -p $(systemctl show -p MainPID --value {SERVICE})")
    assert user == "objectstore"


def test_listens_on_loopback_only_and_extra_listeners_are_off(host):
    ports = listening_ports(host)
    for port in (8333, 9333, 8081, 8888):
        assert ports[port].startswith("tcp://127.0.0.1:"), ports
    for extra in (8181, 9101, 7333):  # Iceberg, Lance, WebDAV
        assert extra not in ports


def test_identity_puts_and_gets_in_its_own_bucket(host):
    answer = probe(host, "mlflow", "mlflow")
    assert answer["put"]["ok"] and answer["get"] == {"ok": True, "value": "mlenv"}


def test_identity_cannot_reach_another_services_bucket(host):
    answer = probe(host, "mlflow", "label-studio")
    assert answer["put"] == {"ok": False, "error": "AccessDenied"}
    assert answer["list"] == {"ok": False, "error": "AccessDenied"}


def test_wrong_secret_is_rejected(host):
    answer = probe(host, "mlflow", "mlflow", secret="x" * 40)
    assert answer["get"] == {"ok": False, "error": "SignatureDoesNotMatch"}


@pytest.mark.parametrize(("bucket", "status"), [("datasets", "Enabled"), ("argo", "")])
def test_versioning_only_where_asked(host, bucket, status):
    assert probe(host, "admin", bucket)["versioning"] == {"ok": True, "value": status}


def test_secrets_and_data_are_private(host):
    assert host.file("/etc/mlenv-object-store/s3.json").mode == 0o600
    assert host.file("/etc/mlenv-object-store/s3.json").user == "objectstore"
    assert host.file("/var/lib/mlenv-object-store").mode == 0o700
    for path in (ephemeral_dir() / "secrets/object_store").iterdir():
        assert path.stat().st_mode & 0o777 == 0o600, path


def test_unit_is_hardened(host):
    unit = host.file(f"/etc/systemd/system/{SERVICE}.service").content_string
    for directive in ("NoNewPrivileges=yes", "ProtectSystem=strict", "PrivateTmp=yes", "CapabilityBoundingSet="):
        assert directive in unit


def wait_for(condition, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(1)
    return False


def test_restarts_by_itself_after_kill_9(host):
    def main_pid() -> str:
        return host.check_output(f"systemctl show -p MainPID --value {SERVICE}")

    before = main_pid()
    host.run(f"systemctl kill --signal=KILL {SERVICE}")
    assert wait_for(lambda: main_pid() not in (before, "0"), 30), "systemd did not start a new process"
    assert wait_for(lambda: probe(host, "mlflow", "mlflow")["get"]["ok"], 60), "S3 did not answer again"
