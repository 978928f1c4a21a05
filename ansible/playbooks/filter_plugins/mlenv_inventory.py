"""Inventory checks that span several roles, run by the boilerplate play before any host changes."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

ROLES_DIR = Path(__file__).resolve().parents[2] / "roles"

# Which group runs which role, and the port options of that role. SeaweedFS also opens
# each of its ports plus 10000 for gRPC.
SERVICE_PORTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "db_hosts": ("postgresql", ("postgresql_port",)),
    "object_store_hosts": (
        "object_store",
        (
            "object_store_port",
            "object_store_seaweedfs_master_port",
            "object_store_seaweedfs_volume_port",
            "object_store_seaweedfs_filer_port",
        ),
    ),
    "mlflow_hosts": ("mlflow", ("mlflow_port",)),
    "label_studio_hosts": ("label_studio", ("label_studio_port",)),
    "ml_loop_hosts": ("ml_loop", ("ml_loop_port",)),
    "model_server_hosts": (
        "model_server",
        ("model_server_http_port", "model_server_grpc_port", "model_server_metrics_port"),
    ),
    "proxy_hosts": ("proxy", ("proxy_https_port", "proxy_http_port")),
}
GRPC_OFFSET = 10000


def _role_defaults(role: str) -> dict[str, Any]:
    path = ROLES_DIR / role / "defaults/main.yml"
    return (yaml.safe_load(path.read_text()) or {}) if path.is_file() else {}


def _ports_of(host_vars: Mapping[str, Any], role: str, options: tuple[str, ...]) -> dict[int, str]:
    defaults = _role_defaults(role)
    ports: dict[int, str] = {}
    backend = host_vars.get("object_store_backend", defaults.get("object_store_backend"))
    for option in options:
        if "seaweedfs" in option and backend != "seaweedfs":
            continue
        value = host_vars.get(option, defaults.get(option))
        if value is None:
            continue
        ports[int(value)] = option
        if role == "object_store" and backend == "seaweedfs":
            ports[int(value) + GRPC_OFFSET] = f"{option} (gRPC, +{GRPC_OFFSET})"
    if role == "object_store" and backend == "external":
        return {}
    return ports


def mlenv_port_clashes(hosts: list[str], hostvars: Mapping[str, Any], groups: Mapping[str, list[str]]) -> list[str]:
    """One message per port that two services on the same host would both listen on."""
    clashes: list[str] = []
    for host in hosts:
        taken: dict[int, str] = {}
        for group, (role, options) in SERVICE_PORTS.items():
            if host not in groups.get(group, []):
                continue
            for port, option in _ports_of(hostvars[host], role, options).items():
                if port in taken:
                    clashes.append(f"{host}: {option} and {taken[port]} are both {port}; give one of them another port")
                else:
                    taken[port] = option
    return clashes


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"mlenv_port_clashes": mlenv_port_clashes}
