"""The pack's policies by domain; ALL is what the pack enforces (and what the tests run)."""

from .cluster import control_plane_not_public, network_policies_enforced, node_identity
from .gitlab import gitlab_private, gitlab_secret_variables, gitlab_token_expiry
from .gpu_pools import gpu_pool_autoscaling, gpu_pool_label_and_taint

ALL = [
    gpu_pool_label_and_taint,
    gpu_pool_autoscaling,
    control_plane_not_public,
    node_identity,
    network_policies_enforced,
    gitlab_secret_variables,
    gitlab_private,
    gitlab_token_expiry,
]
