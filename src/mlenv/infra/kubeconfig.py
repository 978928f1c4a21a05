"""Kubeconfigs that hold no long-lived credential: the user is an exec plugin of the cloud's CLI."""

from __future__ import annotations

import yaml


def exec_kubeconfig(name: str, server: str, ca_certificate: str, command: str, args: list[str]) -> str:
    user: dict[str, object] = {"apiVersion": "client.authentication.k8s.io/v1beta1", "command": command}
    if args:
        user["args"] = args
    else:
        user["provideClusterInfo"] = True
    return yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": name, "cluster": {"server": server, "certificate-authority-data": ca_certificate}}],
            "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
            "current-context": name,
            "users": [{"name": name, "user": {"exec": user}}],
        },
        sort_keys=False,
    )
