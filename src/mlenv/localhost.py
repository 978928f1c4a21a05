"""The local profile's host: a systemd container on this machine, made from the test-host image.

Where PID 1 is not systemd (containers, CI) roles cannot manage services on this
machine itself, so mlenv runs them in a systemd container built from the same recipe
as the test hosts, and converges into it through Podman.
"""

from __future__ import annotations

import json
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from mlenv.hostimage import ensure_image, podman_env

CONTAINER_NAME = "mlenv-local"
HTTPS_PORT = 8443
BOOT_TIMEOUT_S = 60


class LocalHostError(RuntimeError):
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

    @property
    def _env(self) -> dict[str, str]:
        return podman_env(self.project_root)

    def _podman(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(["podman", *args], env=self._env, capture_output=True, text=True, check=False)
        if check and result.returncode != 0:
            raise LocalHostError(f"podman {' '.join(args[:2])} failed: {result.stderr.strip()}")
        return result

    def state(self) -> str:
        """'running', 'exited', … or 'missing'."""
        result = self._podman("container", "inspect", self.name, check=False)
        if result.returncode != 0:
            return "missing"
        return json.loads(result.stdout)[0]["State"]["Status"]

    def ensure_running(self) -> str:
        """Create or start the host; return what was done."""
        image = ensure_image(self.project_root)
        state = self.state()
        if state != "missing":
            self._check_published_port()
        if state == "running":
            return "already running"
        if state == "missing":
            self._podman(
                "run",
                "--detach",
                "--name",
                self.name,
                "--hostname",
                self.name,
                "--systemd=always",
                # Hardened units (PrivateTmp, ProtectSystem) need it to set up their namespaces.
                "--cap-add=SYS_ADMIN",
                "--label",
                "io.mlenv.role=local-host",
                "--publish",
                f"127.0.0.1:{self.https_port}:443",
                image,
            )
            action = "created"
        else:
            self._podman("start", self.name)
            action = "started"
        self._wait_for_boot()
        return action

    def _check_published_port(self) -> None:
        inspected = json.loads(self._podman("container", "inspect", self.name).stdout)[0]
        bindings = (inspected.get("HostConfig", {}).get("PortBindings") or {}).get("443/tcp") or []
        ports = {int(binding.get("HostPort", 0)) for binding in bindings}
        if self.https_port not in ports:
            raise LocalHostError(
                f"{self.name} publishes HTTPS on {sorted(ports) or 'no port'}, not {self.https_port}: "
                f"use that port (MLENV_HTTPS_PORT), or recreate the host with `mlenv down --purge`"
            )

    def _wait_for_boot(self) -> None:
        deadline = time.monotonic() + BOOT_TIMEOUT_S
        while time.monotonic() < deadline:
            result = self._podman("exec", self.name, "systemctl", "is-system-running", check=False)
            if result.stdout.strip() in {"running", "degraded"}:
                return
            time.sleep(0.5)
        raise LocalHostError(f"{self.name} did not finish booting in {BOOT_TIMEOUT_S}s: podman logs {self.name}")

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
