"""A test host on a Podman network of its own, reaching only a bundle server (or, as the baseline, the
internet), converged by mlenv's own converge step; shared by the offline test and the bundle benchmark."""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from mlenv.app import Application
from mlenv.config import Bundle, MlenvConfig
from mlenv.hostimage import ensure_image, podman_env
from mlenv.localhost import LocalHost, ssh_connection
from mlenv.paths import project_root
from mlenv.profiles.base import Run, converge
from mlenv.profiles.local import local_inventory
from mlenv.runners.ansible import PlaybookResult

BUNDLE_PORT = 8000
SERVER_TIMEOUT_S = 30


def podman(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["podman", *args], env=podman_env(project_root()), capture_output=True, text=True, check=check
    )


@dataclass
class Site:
    """One network, its host, and (offline) the bundle server on it."""

    prefix: str
    bundle: Path | None

    @property
    def network(self) -> str:
        return f"{self.prefix}-net"

    @property
    def server(self) -> str:
        return f"{self.prefix}-bundle"

    @property
    def host(self) -> LocalHost:
        return LocalHost(project_root(), name=f"{self.prefix}-host", environment=self.prefix, network=self.network)

    @property
    def bundle_url(self) -> str:
        return f"http://{self.server}:{BUNDLE_PORT}/"

    def remove(self) -> None:
        """This site's containers and network, also when an earlier run left them."""
        podman("rm", "--force", "--time", "0", self.host.name, self.server, check=False)
        podman("network", "rm", "--force", self.network, check=False)

    def start(self) -> None:
        self.remove()
        # Offline: an internal network, with no route beyond its own containers.
        podman("network", "create", *(["--internal"] if self.bundle else []), self.network)
        if self.bundle is not None:
            podman(
                "run", "--detach", "--name", self.server, "--network", self.network,
                "--volume", f"{self.bundle}:/srv/bundle:ro", ensure_image(project_root()),
                "python3", "-m", "http.server", str(BUNDLE_PORT), "--directory", "/srv/bundle",
            )  # fmt: skip
        self.host.ensure_running()
        if self.bundle is not None:
            self.wait_for_server()

    def on_host(self, *argv: str) -> subprocess.CompletedProcess[str]:
        return podman("exec", self.host.name, *argv, check=False)

    def fetch_from_host(self, url: str) -> subprocess.CompletedProcess[str]:
        """A GET from the host with its own Python: exit 0 and the status, or the error."""
        script = "import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=5).status)"
        return self.on_host("python3", "-c", script, url)

    def wait_for_server(self) -> None:
        deadline = time.monotonic() + SERVER_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.fetch_from_host(self.bundle_url + "bundle.json").returncode == 0:
                return
            time.sleep(0.5)
        raise AssertionError(f"the bundle server {self.server} did not answer in {SERVER_TIMEOUT_S}s")

    def config(self) -> MlenvConfig:
        bundle = Bundle(url=self.bundle_url) if self.bundle is not None else None
        return MlenvConfig(environment=self.prefix, bundle=bundle)

    def converge(self, state: Path) -> tuple[PlaybookResult, float]:
        """mlenv's converge of site.yml onto the host, over SSH to its address as `mlenv up` reaches its host."""
        run = Run(self.config(), state, Application())
        run.secrets.mkdir(parents=True, exist_ok=True, mode=0o700)
        connection = ssh_connection(self.host, state)
        assert connection is not None
        started = time.monotonic()
        result = converge(run, local_inventory(run, connection), public_https_port=443)
        return result, time.monotonic() - started
