"""The object_store role (SeaweedFS) on a real systemd host, used through its S3 API."""

from __future__ import annotations

import shlex
import time

import pytest

from tests.helpers.hostpython import s3_probe
from tests.helpers.molecule import ephemeral_dir, podman_hosts, secret

testinfra_hosts = podman_hosts()
journal_units = ["mlenv-object-store", "mlenv-object-store-s3"]
SERVICE = "mlenv-object-store"
ENTRY = "mlenv-object-store-s3"
ENDPOINT = "http://127.0.0.2:8333"
# SeaweedFS's parts and their gRPC ports (port + 10000), none with authentication.
INTERNAL_PORTS = (9333, 8081, 8888, 19333, 18081, 18888, 18333)
TOOLS_PYTHON = "/opt/mlenv/s3-tools/bin/python"


def keys(identity: str) -> tuple[str, str]:
    return secret(f"object_store/{identity}.access_key"), secret(f"object_store/{identity}.secret_key")


def probe(host, identity: str, bucket: str, *, secret: str | None = None) -> dict:
    access_key, secret_key = keys(identity)
    return s3_probe(
        host, TOOLS_PYTHON, endpoint=ENDPOINT, access_key=access_key, secret_key=secret or secret_key, bucket=bucket
    )


def listening(host, *, unit: str = "") -> set[str]:
    """ADDRESS:PORT of every IPv4 TCP listener in the host's network namespace or a unit's (as its
    main process sees it: /proc/PID/net/tcp is the network of that process)."""
    pid = host.check_output(f"systemctl show -p MainPID --value {unit}") if unit else "self"
    found = set()
    for line in host.check_output(f"cat /proc/{pid}/net/tcp").splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        if state == "0A":  # LISTEN
            address, port = local.split(":")
            octets = [str(int(address[i : i + 2], 16)) for i in (6, 4, 2, 0)]
            found.add(f"{'.'.join(octets)}:{int(port, 16)}")
    return found


def connects(host, address: str, port: int) -> bool:
    probe = f"import socket; socket.create_connection(({address!r}, {port}), timeout=3)"
    return host.run(f"python3 -c {shlex.quote(probe)}").rc == 0


def test_service_runs_as_its_own_user(host):
    service = host.service(SERVICE)
    assert service.is_running and service.is_enabled
    user = host.check_output(f"ps -o user= -p $(systemctl show -p MainPID --value {SERVICE})")
    assert user == "objectstore"


def test_only_the_s3_port_is_reachable_on_the_host(host):
    on_host = listening(host)
    assert "127.0.0.2:8333" in on_host
    assert not {spec for spec in on_host if int(spec.rsplit(":", 1)[1]) in (*INTERNAL_PORTS, 8333)} - {
        "127.0.0.2:8333"
    }, on_host
    for port in INTERNAL_PORTS:
        assert not connects(host, "127.0.0.1", port), port
        assert not connects(host, "127.0.0.2", port), port
    assert connects(host, "127.0.0.2", 8333)


def test_the_parts_listen_on_the_servers_own_loopback_and_extra_listeners_are_off(host):
    inside = listening(host, unit=SERVICE)
    for port in (8333, *INTERNAL_PORTS):
        assert f"127.0.0.1:{port}" in inside, inside
    ports = {int(spec.rsplit(":", 1)[1]) for spec in inside}
    for extra in (8181, 9101, 7333):  # Iceberg, Lance, WebDAV
        assert extra not in ports
    assert all(spec.startswith("127.0.0.1:") for spec in inside), inside


def test_the_s3_entry_runs_in_the_servers_network_as_its_user(host):
    assert connects(host, "127.0.0.2", 8333)  # the socket starts the entry on the first connection
    assert listening(host, unit=ENTRY) == listening(host, unit=SERVICE) != listening(host)
    assert host.check_output(f"ps -o user= -p $(systemctl show -p MainPID --value {ENTRY})") == "objectstore"
    assert host.service(f"{ENTRY}.socket").is_enabled


def test_identity_puts_and_gets_in_its_own_bucket(host):
    answer = probe(host, "mlflow", "mlflow")
    assert answer["put"]["ok"] and answer["get"] == {"ok": True, "value": "mlenv"}


def test_identity_cannot_reach_another_services_bucket(host):
    answer = probe(host, "mlflow", "label-studio")
    assert answer["put"] == {"ok": False, "error": "AccessDenied"}
    assert answer["list"] == {"ok": False, "error": "AccessDenied"}


def test_a_read_only_identity_reads_and_lists_but_cannot_write(host):
    assert probe(host, "mlflow", "mlflow")["put"]["ok"]  # something to read
    answer = probe(host, "serving", "mlflow")
    assert answer["put"] == {"ok": False, "error": "AccessDenied"}
    assert answer["get"] == {"ok": True, "value": "mlenv"} and answer["list"]["ok"]
    assert probe(host, "serving", "datasets")["list"] == {"ok": False, "error": "AccessDenied"}


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


def test_the_s3_entry_comes_back_after_kill_9(host):
    before = host.check_output(f"systemctl show -p MainPID --value {ENTRY}")
    host.run(f"systemctl kill --signal=KILL {ENTRY}")
    assert wait_for(lambda: probe(host, "mlflow", "mlflow")["get"]["ok"], 60), "S3 did not answer again"
    assert host.check_output(f"systemctl show -p MainPID --value {ENTRY}") not in (before, "0")
