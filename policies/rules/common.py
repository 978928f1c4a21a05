"""Helpers the rules share: reading camelCase props of the GKE and EKS node pools."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pulumi_policy import ResourceValidationArgs

Report = Callable[..., None]

GKE_NODE_POOL = "gcp:container/nodePool:NodePool"
GKE_CLUSTER = "gcp:container/cluster:Cluster"
EKS_NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"
EKS_CLUSTER = "aws:eks/cluster:Cluster"
EKS_ADDON = "aws:eks/addon:Addon"
EC2_LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"


def get(props: Mapping[str, Any], *path: str, default: Any = None) -> Any:
    value: Any = props
    for key in path:
        if not isinstance(value, Mapping) or key not in value:
            return default
        value = value[key]
    return value


def is_gpu_pool(args: ResourceValidationArgs) -> bool:
    if args.resource_type == GKE_NODE_POOL:
        return bool(get(args.props, "nodeConfig", "guestAccelerators"))
    if args.resource_type == EKS_NODE_GROUP:
        return "NVIDIA" in str(args.props.get("amiType", "")) or "GPU" in str(args.props.get("amiType", ""))
    return False
