"""The local profile's host: a systemd container on this machine, made from the test-host image.

Where PID 1 is not systemd (containers, CI) roles cannot manage services on this
machine itself, so mlenv runs them in a systemd container built from the same recipe
as the test hosts, and converges into it over SSH on 127.0.0.1, as an operator would
reach a server: each task over the Podman connection costs about a second more.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mlenv.errors import UserError
from mlenv.files import write_private
from mlenv.hostimage import ensure_image, podman_env

CONTAINER_NAME = "mlenv-local"
HTTPS_PORT = 8443
ROLE_LABEL, ROLE = "io.mlenv.role", "local-host"
ENVIRONMENT_LABEL = "io.mlenv.environment"
BOOT_TIMEOUT_S = 60
SSH_PORT = "22/tcp"


class LocalHostError(UserError):
    pass


def pid1_is_systemd() -> bool:
    try:
        return Path("/proc/1/comm").read_text().strip() == "systemd"
    except OSError:
        return False


@dataclass
class LocalHost:
    """The container host; its proxy's HTTPS port is published on 127.0.0.1 only."""

    project_root: Path
    name: str = CONTAINER_NAME
    https_port: int = HTTPS_PORT
    environment: str = "local"
    # A Podman network to join instead of publishing ports on 127.0.0.1 (an internal network that
    # reaches only a bundle server, say); the host is then reached at its address there.
    network: str | None = None

    @property
    def _env(self) -> dict[str, str]:
        return podman_env(self.project_root)

    def _podman(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        try:
            result = subprocess.run(["podman", *args], env=self._env, capture_output=True, text=True, check=False)
        except FileNotFoundError:
            raise LocalHostError(
                "podman is not installed: apt-get install podman runc (scripts/install-system-packages)"
            ) from None
        if check and result.returncode != 0:
            raise LocalHostError(f"podman {' '.join(args[:2])} failed: {result.stderr.strip()}")
        return result

    def state(self) -> str:
        """'running', 'exited', … or 'missing'; a container that is not this environment's host is refused."""
        result = self._podman("container", "inspect", self.name, check=False)
        if result.returncode != 0:
            return "missing"
        inspected = json.loads(result.stdout)[0]
        self._check_owner(inspected.get("Config", {}).get("Labels") or {})
        return inspected["State"]["Status"]

    def _check_owner(self, labels: dict[str, str]) -> None:
        """Only a container mlenv made for this environment is converged, stopped or removed."""
        if labels.get(ROLE_LABEL) != ROLE:
            raise LocalHostError(
                f"a container named {self.name} exists but was not made by mlenv: mlenv leaves it alone; "
                f"set local.host_name in mlenv.yaml to another name"
            )
        owner = labels.get(ENVIRONMENT_LABEL)
        # Hosts made before environments were labelled carry none; the default name ties them to theirs.
        if owner is None and self.name == f"mlenv-{self.environment}":
            return
        if owner != self.environment:
            raise LocalHostError(
                f"the container {self.name} is the host of environment {owner or '(unlabelled)'!r}, not "
                f"{self.environment!r}: mlenv does not touch another environment's host; set local.host_name "
                f"in mlenv.yaml to another name (the default is mlenv-{self.environment})"
            )

    def ensure_running(self) -> str:
        """Create or start the host; return what was done."""
        image = ensure_image(self.project_root)
        state = self.state()
        if state != "missing" and self.network is None:
            self._check_published_port()
        if state == "running":
            # One exec when it is up; a host whose boot was cut short (mlenv killed) is waited for.
            self._wait_for_boot()
            return "already running"
        if state == "paused":
            self._podman("unpause", self.name)
            self._wait_for_boot()
            return "unpaused"
        if state == "missing":
            self._podman(
                "run",
                "--detach",
                "--name",
                self.name,
                "--hostname",
                self.name,
                "--systemd=always",
                # Hardened units (PrivateTmp, ProtectSystem) need it to set up their namespaces,
                # and NET_ADMIN to bring up the loopback of a unit's private network.
                "--cap-add=SYS_ADMIN",
                "--cap-add=NET_ADMIN",
                "--label",
                f"{ROLE_LABEL}={ROLE}",
                "--label",
                f"{ENVIRONMENT_LABEL}={self.environment}",
                *self._reach(),
                image,
            )
            action = "created"
        else:
            self._podman("start", self.name)
            action = "started"
        self._wait_for_boot()
        return action

    def _reach(self) -> list[str]:
        if self.network is not None:
            return ["--network", self.network]
        # Podman picks a free loopback port for SSH; `ssh_port()` reads it back.
        return ["--publish", f"127.0.0.1:{self.https_port}:443", "--publish", f"127.0.0.1::{SSH_PORT.split('/')[0]}"]

    def address(self) -> str:
        """The host's address on its own network (hosts made with `network`)."""
        inspected = json.loads(self._podman("container", "inspect", self.name).stdout)[0]
        return inspected["NetworkSettings"]["Networks"][self.network]["IPAddress"]

    def container_id(self) -> str:
        return json.loads(self._podman("container", "inspect", self.name).stdout)[0]["Id"]

    def _bindings(self, container_port: str) -> list[dict[str, str]]:
        """How a container port is published (empty when it is not)."""
        inspected = json.loads(self._podman("container", "inspect", self.name).stdout)[0]
        return (inspected.get("HostConfig", {}).get("PortBindings") or {}).get(container_port) or []

    def _check_published_port(self) -> None:
        ports = {int(binding.get("HostPort", 0)) for binding in self._bindings("443/tcp")}
        if self.https_port not in ports:
            raise LocalHostError(
                f"{self.name} publishes HTTPS on {sorted(ports) or 'no port'}, not {self.https_port}: "
                f"set tls.https_port to it in mlenv.yaml, or recreate the host with `mlenv down --purge`"
            )

    def _wait_for_boot(self) -> None:
        deadline = time.monotonic() + BOOT_TIMEOUT_S
        while time.monotonic() < deadline:
            result = self._podman("exec", self.name, "systemctl", "is-system-running", check=False)
            if result.stdout.strip() in {"running", "degraded"}:
                return
            time.sleep(0.5)
        raise LocalHostError(f"{self.name} did not finish booting in {BOOT_TIMEOUT_S}s: podman logs {self.name}")

    def ssh_port(self) -> int | None:
        """The loopback port publishing the host's sshd (None for hosts made before it was published)."""
        published = self._podman("port", self.name, SSH_PORT, check=False).stdout.split()
        if not self._bindings(SSH_PORT) or not published:
            return None
        return int(published[0].rsplit(":", 1)[1])

    def ssh_endpoint(self) -> tuple[str, int] | None:
        """Where the controller reaches the host's sshd: its published loopback port, or on its own network
        its address; None for hosts made before the port was published."""
        if self.network is not None:
            return self.address(), int(SSH_PORT.split("/")[0])
        port = self.ssh_port()
        return None if port is None else ("127.0.0.1", port)

    def authorize(self, public_key: str) -> None:
        """Let the controller's key log in as root (rewritten each run: the key file is the truth)."""
        self._podman("exec", self.name, "install", "-d", "-m", "0700", "/root/.ssh")
        result = subprocess.run(
            ["podman", "exec", "-i", self.name, "sh", "-c", "umask 077 && cat > /root/.ssh/authorized_keys"],
            env=self._env,
            input=public_key,
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise LocalHostError(f"could not install the SSH key in {self.name}: {result.stderr.strip()}")

    def host_public_key(self) -> str:
        """Read over podman (a channel we trust), so SSH can check the host key strictly."""
        return self._podman("exec", self.name, "cat", "/etc/ssh/ssh_host_ed25519_key.pub").stdout.strip()

    def stop(self) -> bool:
        if self.state() != "running":
            return False
        self._podman("stop", self.name)
        return True

    def remove(self) -> bool:
        if self.state() == "missing":
            return False
        self._podman("rm", "--force", self.name)
        return True


def client_key(secrets: Path) -> Path:
    """The controller's key for the local host, made once (0600, in the credentials folder)."""
    key = secrets / "ssh" / "id_ed25519"
    if not key.exists():
        key.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        result = subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "mlenv-controller", "-f", str(key)],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise LocalHostError(f"ssh-keygen failed: {result.stderr.strip()} (is openssh-client installed?)")
    return key


# What ssh says when the daemon is not answering yet, as opposed to refusing us.
NOT_YET = ("Connection refused", "Connection reset", "Connection closed", "timed out")


def ssh_refusal(key: Path, known_hosts: Path, address: str, port: int) -> str:
    """'' when root logs in with the key and the pinned host key; else ssh's last word on why not. A
    daemon not answering yet is asked again for a few seconds."""
    command = ["ssh", "-i", str(key), "-p", str(port), "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
               "-o", f"UserKnownHostsFile={known_hosts}", "-o", "StrictHostKeyChecking=yes",
               "-o", "ConnectTimeout=5", f"root@{address}", "true"]  # fmt: skip
    said = ""
    for _ in range(10):
        result = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
        if result.returncode == 0:
            return ""
        said = (result.stderr.strip().splitlines() or [f"ssh exited with {result.returncode}"])[-1]
        if not any(marker in said for marker in NOT_YET):
            return said
        time.sleep(1)
    return said


def ssh_connection(
    host: LocalHost, state: Path, on_repair: Callable[[str], None] | None = None
) -> dict[str, str] | None:
    """Ansible connection variables for the host over SSH, with its host key pinned; None when the
    host publishes no SSH port (made by an older mlenv: it is then reached through Podman). Access
    that stopped working (mlenv's key no longer authorized, the host key changed) is set up again
    over Podman, the channel mlenv trusts, and `on_repair` is told what was repaired."""
    endpoint = host.ssh_endpoint()
    if endpoint is None:
        return None
    address, port = endpoint
    key = client_key(state / "secrets")
    public_key = key.with_suffix(".pub").read_text()
    known_hosts, record = state / "ssh_known_hosts", state / "ssh_host.json"

    def pin() -> None:
        host.authorize(public_key)
        # ssh looks a host on the default port up by its bare name.
        pinned = address if port == 22 else f"[{address}]:{port}"
        write_private(known_hosts, f"{pinned} {host.host_public_key()}\n")
        write_private(record, json.dumps(wanted))

    # Each podman exec costs about 0.2 s: the key is authorized and the host key pinned again at once
    # when the container (recreated: new host key), its port or the controller's key changed; else
    # one ssh login says whether what was set up still works.
    wanted = {"container": host.container_id(), "address": address, "port": port, "client_key": public_key.strip()}
    if not known_hosts.is_file() or not record.is_file() or json.loads(record.read_text()) != wanted:
        pin()
    elif refused := ssh_refusal(key, known_hosts, address, port):
        pin()
        if still := ssh_refusal(key, known_hosts, address, port):
            raise LocalHostError(
                f"{host.name} refuses mlenv's SSH login even after its key was authorized and the host key "
                f"pinned again over Podman: {still}"
            )
        if on_repair:
            on_repair(f"SSH to {host.name} was refused ({refused}): mlenv's key is authorized and the host key "
                      f"pinned again, over Podman")  # fmt: skip
    return {
        "ansible_connection": "ssh",
        "ansible_host": address,
        "ansible_port": str(port),
        "ansible_user": "root",
        # The image's Python (hostimage.py installs it): no interpreter discovery on every run.
        "ansible_python_interpreter": "/usr/bin/python3",
        "ansible_ssh_private_key_file": str(key),
        "ansible_ssh_common_args": (
            f"-o UserKnownHostsFile={known_hosts} -o StrictHostKeyChecking=yes -o IdentitiesOnly=yes"
        ),
    }
