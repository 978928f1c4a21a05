"""What a molecule scenario's testinfra tests need to know about its hosts."""

from __future__ import annotations

import os
from pathlib import Path

import yaml


def _env_path(name: str) -> Path:
    value = os.environ.get(name)
    if not value:
        raise RuntimeError(f"{name} is not set: run these tests through `molecule verify` or `molecule test`")
    return Path(value)


def instance_names() -> list[str]:
    """Names of the scenario's hosts, from the inventory molecule generated."""
    inventory = yaml.safe_load(_env_path("MOLECULE_INVENTORY_FILE").read_text()) or {}
    return sorted((inventory.get("all", {}).get("hosts") or {}).keys())


def podman_hosts() -> list[str]:
    """testinfra host specs that reach the instances straight through podman."""
    return [f"podman://{name}" for name in instance_names()]


def ephemeral_dir() -> Path:
    return _env_path("MOLECULE_EPHEMERAL_DIRECTORY")


def secret(relative: str) -> str:
    """A secret the scenario's converge generated on the controller, e.g. 'mlflow/admin_password'."""
    return (ephemeral_dir() / "secrets" / relative).read_text().split()[0]
