"""mlenv's CrossGuard pack: assembles the rules; each rule module holds its validators and messages."""

from pulumi_policy import EnforcementLevel, PolicyPack
from rules.cluster import control_plane_not_public, node_identity
from rules.gitlab import gitlab_private, gitlab_secret_variables, gitlab_token_expiry
from rules.gpu_pools import gpu_pool_autoscaling, gpu_pool_label_and_taint

PolicyPack(
    name="mlenv",
    enforcement_level=EnforcementLevel.MANDATORY,
    policies=[
        gpu_pool_label_and_taint,
        gpu_pool_autoscaling,
        control_plane_not_public,
        node_identity,
        gitlab_secret_variables,
        gitlab_private,
        gitlab_token_expiry,
    ],
)
