"""GPU placement, in one place: every GPU pool carries these, and every GPU consumer (Argo steps,
GitLab runner job pods, KServe predictors) selects and tolerates them."""

from __future__ import annotations

POOL_LABEL = "mlenv.io/pool"
GPU_TAINT_KEY = "nvidia.com/gpu"
GPU_TAINT_VALUE = "present"
GPU_TAINT_EFFECT = "NoSchedule"  # Kubernetes spelling; GKE's API says NO_SCHEDULE


def pool_labels(pool: str) -> dict[str, str]:
    return {POOL_LABEL: pool}


def node_selector(pool: str) -> dict[str, str]:
    return {POOL_LABEL: pool}


def gpu_toleration() -> dict[str, str]:
    return {"key": GPU_TAINT_KEY, "operator": "Equal", "value": GPU_TAINT_VALUE, "effect": GPU_TAINT_EFFECT}


def pool_summary(name: str, machine_type: str, accelerator: str, min_nodes: int, max_nodes: int) -> dict[str, object]:
    """One entry of the cluster program's `gpu_pools` output (docs/architecture.md, "Contracts")."""
    return {
        "name": name,
        "machine_type": machine_type,
        "accelerator": accelerator,
        "labels": pool_labels(name),
        "taints": [f"{GPU_TAINT_KEY}={GPU_TAINT_VALUE}:{GPU_TAINT_EFFECT}"],
        "min_nodes": min_nodes,
        "max_nodes": max_nodes,
    }
