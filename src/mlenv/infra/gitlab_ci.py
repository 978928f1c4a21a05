"""What the GitLab program writes as text: the starter ML project's files and the runners'
Kubernetes executor config."""

from __future__ import annotations

import json
from pathlib import Path

from mlenv.infra.placement import GPU_TAINT_EFFECT, GPU_TAINT_KEY, GPU_TAINT_VALUE, POOL_LABEL

STARTER_PROJECT = "templates/ml-project"


def starter_project_files(root: Path) -> dict[str, str]:
    """The starter ML project (templates/ml-project), path → text: committed as is into the training
    project, so a clone of it runs (its pipeline reads the group's variables)."""
    folder = root / STARTER_PROJECT
    return {
        path.relative_to(folder).as_posix(): path.read_text()
        for path in sorted(folder.rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts
    }


def runner_config(url: str, token: str, namespace: str, pool: str | None) -> str:
    """config.toml for gitlab-runner's Kubernetes executor; the GPU runner pins its pods to the pool."""
    name = f"mlenv-{pool}" if pool else "mlenv-cpu"
    lines = [
        "concurrent = 4",
        "",
        "[[runners]]",
        f"  name = {json.dumps(name)}",
        f"  url = {json.dumps(url)}",
        f"  token = {json.dumps(token)}",
        '  executor = "kubernetes"',
        "  [runners.kubernetes]",
        f"    namespace = {json.dumps(namespace)}",
        "    privileged = false",
        '    cpu_request = "500m"',
        '    memory_request = "1Gi"',
    ]
    if pool:
        lines += [
            '    service_account = "gitlab-runner-gpu"',
            "    [runners.kubernetes.node_selector]",
            f"      {json.dumps(POOL_LABEL)} = {json.dumps(pool)}",
            "    [runners.kubernetes.node_tolerations]",
            f"      {json.dumps(f'{GPU_TAINT_KEY}={GPU_TAINT_VALUE}')} = {json.dumps(GPU_TAINT_EFFECT)}",
        ]
    return "\n".join(lines) + "\n"
