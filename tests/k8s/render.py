"""Run a Kubernetes role on the controller only, as the offline tests need it."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import yaml


def run_role(
    role: str, tmp: Path, env: dict[str, str], *options: str, **role_vars: object
) -> subprocess.CompletedProcess[str]:
    playbook = tmp / "play.yml"
    playbook.write_text(yaml.safe_dump([{"name": role, "hosts": "localhost", "gather_facts": False, "roles": [role]}]))
    # Secrets a role generates (the gateway's password) go to the test's own folder.
    (tmp / "vars.json").write_text(json.dumps({"mlenv_secrets_dir": str(tmp / "secrets"), **role_vars}))
    interpreter = "ansible_python_interpreter={{ ansible_playbook_python }}"
    return subprocess.run(
        ["ansible-playbook", "-i", "localhost,", "-c", "local", "-e", interpreter, "-e", f"@{tmp / 'vars.json'}",
         *options, str(playbook)],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def missing_cluster_kubeconfig(tmp: Path) -> Path:
    """A kubeconfig whose API server is a closed port on loopback: nothing answers there."""
    path = tmp / "kubeconfig"
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "gone",
        "clusters": [{"name": "gone", "cluster": {"server": "https://127.0.0.1:1"}}],
        "contexts": [{"name": "gone", "context": {"cluster": "gone", "user": "gone"}}],
        "users": [{"name": "gone", "user": {"token": "none"}}],
    }))  # fmt: skip
    return path
