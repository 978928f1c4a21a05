"""The postgresql role on a real systemd host: service, port, and who may log in."""

from __future__ import annotations

import shlex
import time

import pytest

from tests.helpers.molecule import ephemeral_dir, podman_hosts

testinfra_hosts = podman_hosts()
journal_units = ["postgresql@15-main"]


def app_password() -> str:
    return (ephemeral_dir() / "secrets/postgresql/app").read_text().split()[0]


def psql(host, *, user: str, password: str, address: str, sql: str):
    command = f"psql -h {address} -U {user} -d app -tAc {shlex.quote(sql)}"
    return host.run(f"PGPASSWORD={shlex.quote(password)} PGCONNECT_TIMEOUT=5 {command}")


@pytest.fixture(scope="module")
def private_address(host) -> str:
    # The container's own network address: not loopback, so not listed for any user.
    return host.check_output("hostname -I").split()[0]


def test_service_is_running_and_enabled(host):
    service = host.service("postgresql@15-main")
    assert service.is_running
    assert service.is_enabled


def test_a_killed_postmaster_is_restarted(host):
    """kill -9 of the server: systemd starts it again (Debian's unit alone leaves it down)."""
    unit = "postgresql@15-main"
    assert host.check_output(f"systemctl show -P Restart {unit}") == "on-failure"
    before = host.check_output(f"systemctl show -P MainPID {unit}")
    assert before != "0"
    host.run_expect([0], f"kill -9 {before}")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        after = host.check_output(f"systemctl show -P MainPID {unit}")
        if after not in {"0", before} and host.run(f"systemctl is-active {unit}").stdout.strip() == "active":
            break
        time.sleep(1)
    assert host.service(unit).is_running and after != before
    assert psql(host, user="app", password=app_password(), address="127.0.0.1", sql="select 1").stdout.strip() == "1"


def test_listens_on_the_configured_port(host):
    assert host.socket("tcp://0.0.0.0:5432").is_listening


def test_generated_password_is_kept_private_on_the_controller():
    secret = ephemeral_dir() / "secrets/postgresql/app"
    assert secret.stat().st_mode & 0o777 == 0o600
    assert len(app_password()) == 32


def test_app_user_connects_with_its_password(host):
    result = psql(host, user="app", password=app_password(), address="127.0.0.1", sql="SELECT current_user")
    assert result.rc == 0, result.stderr
    assert result.stdout.strip() == "app"


def test_given_password_works_for_an_extra_database(host):
    result = psql(host, user="reporter", password="reporter-password-long-enough", address="127.0.0.1", sql="SELECT 1")
    assert result.rc == 0, result.stderr


def test_wrong_password_is_refused(host):
    result = psql(host, user="app", password="not-the-password", address="127.0.0.1", sql="SELECT 1")
    assert result.rc != 0
    assert "password authentication failed" in result.stderr


def test_client_from_a_network_that_is_not_listed_is_refused(host, private_address):
    result = psql(host, user="app", password=app_password(), address=private_address, sql="SELECT 1")
    assert result.rc != 0
    assert "no pg_hba.conf entry" in result.stderr


def test_passwords_are_stored_as_scram(host):
    result = psql(host, user="app", password=app_password(), address="127.0.0.1", sql="SHOW password_encryption")
    assert result.stdout.strip() == "scram-sha-256"


def test_database_is_utf8_and_owned_by_its_user(host):
    sql = "SELECT pg_encoding_to_char(encoding) || ' ' || pg_get_userbyid(datdba) FROM pg_database WHERE datname='app'"
    result = psql(host, user="app", password=app_password(), address="127.0.0.1", sql=sql)
    assert result.stdout.strip() == "UTF8 app"


def test_memory_is_sized_from_the_given_share(host):
    settings = host.file("/etc/postgresql/15/main/conf.d/50-mlenv.conf").content_string
    assert "shared_buffers = 512MB" in settings
    assert "effective_cache_size = 1536MB" in settings
    assert "log_connections = 'on'" in settings


def test_config_files_are_not_world_readable(host):
    for path in ("/etc/postgresql/15/main/pg_hba.conf", "/etc/postgresql/15/main/conf.d/50-mlenv.conf"):
        config = host.file(path)
        assert config.user == "postgres"
        assert config.mode == 0o640
    assert host.file("/var/lib/postgresql/15/main").mode == 0o700
