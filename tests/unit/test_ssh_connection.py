"""The local host's SSH connection: the key is authorized and the host key pinned over podman only
when something changed (each podman exec costs about 0.2 s of every `mlenv up`), or when an ssh
login says what was set up no longer works; then mlenv says what it repaired."""

from __future__ import annotations

import stat
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from mlenv import localhost
from mlenv.localhost import LocalHostError, ssh_connection


@pytest.fixture(autouse=True)
def ssh_answers(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """What the ssh login says, one answer per login ('' is a login that worked); then it works."""
    answers: list[str] = []
    monkeypatch.setattr(localhost, "ssh_refusal", lambda *args: answers.pop(0) if answers else "")
    return answers


@dataclass
class RecordedHost:
    """Answers like LocalHost and records what reached the container."""

    name: str = "mlenv-test"
    container: str = "c1"
    port: int = 40022
    address: str = "127.0.0.1"
    host_key: str = "ssh-ed25519 AAAAhostkey1"
    calls: list[str] = field(default_factory=list)

    def ssh_endpoint(self) -> tuple[str, int]:
        return self.address, self.port

    def container_id(self) -> str:
        return self.container

    def authorize(self, public_key: str) -> None:
        self.calls.append("authorize " + public_key.split()[0])

    def host_public_key(self) -> str:
        self.calls.append("read host key")
        return self.host_key


def test_the_host_key_is_pinned_once_per_container(tmp_path: Path) -> None:
    host = RecordedHost()
    first = ssh_connection(host, tmp_path)  # type: ignore[arg-type]
    assert host.calls == ["authorize ssh-ed25519", "read host key"]
    known_hosts = tmp_path / "ssh_known_hosts"
    assert known_hosts.read_text() == "[127.0.0.1]:40022 ssh-ed25519 AAAAhostkey1\n"
    assert stat.S_IMODE(known_hosts.stat().st_mode) == 0o600
    assert "StrictHostKeyChecking=yes" in first["ansible_ssh_common_args"]
    assert ssh_connection(host, tmp_path) == first  # type: ignore[arg-type]
    assert len(host.calls) == 2, "nothing changed: no podman exec"
    # A recreated container has a new host key: pinned again.
    host.container, host.host_key = "c2", "ssh-ed25519 AAAAhostkey2"
    ssh_connection(host, tmp_path)  # type: ignore[arg-type]
    assert host.calls[2:] == ["authorize ssh-ed25519", "read host key"]
    assert known_hosts.read_text().endswith("AAAAhostkey2\n")
    # A new controller key (the old one deleted) is authorized again.
    for path in (tmp_path / "secrets/ssh").iterdir():
        path.unlink()
    ssh_connection(host, tmp_path)  # type: ignore[arg-type]
    assert host.calls[4:] == ["authorize ssh-ed25519", "read host key"]


def test_a_host_on_a_network_of_its_own_is_reached_at_its_address(tmp_path: Path) -> None:
    host = RecordedHost(address="10.89.0.7", port=22)
    connection = ssh_connection(host, tmp_path)  # type: ignore[arg-type]
    assert (connection["ansible_host"], connection["ansible_port"]) == ("10.89.0.7", "22")
    assert (tmp_path / "ssh_known_hosts").read_text() == "10.89.0.7 ssh-ed25519 AAAAhostkey1\n"
    # The same container at another address (its network made again) is pinned there again.
    host.address = "10.89.0.9"
    assert ssh_connection(host, tmp_path)["ansible_host"] == "10.89.0.9"  # type: ignore[arg-type]
    assert host.calls[2:] == ["authorize ssh-ed25519", "read host key"]


def test_a_key_no_longer_authorized_is_authorized_again_and_said(tmp_path: Path, ssh_answers: list[str]) -> None:
    host, said = RecordedHost(), []
    ssh_connection(host, tmp_path)  # type: ignore[arg-type]
    ssh_answers.append("root@127.0.0.1: Permission denied (publickey).")
    ssh_connection(host, tmp_path, said.append)  # type: ignore[arg-type]
    assert host.calls[2:] == ["authorize ssh-ed25519", "read host key"]
    assert said == ["SSH to mlenv-test was refused (root@127.0.0.1: Permission denied (publickey).): mlenv's key is "
                    "authorized and the host key pinned again, over Podman"]  # fmt: skip


def test_a_login_still_refused_after_the_repair_is_an_error_naming_why(tmp_path: Path, ssh_answers: list[str]) -> None:
    host = RecordedHost()
    ssh_connection(host, tmp_path)  # type: ignore[arg-type]
    ssh_answers.extend(["Host key verification failed.", "root@127.0.0.1: Permission denied (publickey)."])
    with pytest.raises(LocalHostError, match=r"refuses mlenv's SSH login even after .*: root@127.0.0.1: Permission"):
        ssh_connection(host, tmp_path)  # type: ignore[arg-type]
