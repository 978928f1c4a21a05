"""The CrossGuard pack without the engine: each policy with a passing and a failing resource, and the
cluster program's own resource graph passing the whole pack."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from pulumi_policy import PolicyResourceOptions, ResourceValidationArgs, ResourceValidationPolicy

from policies.rules import ALL
from policies.rules.cluster import control_plane_not_public, network_policies_enforced, node_identity
from policies.rules.gitlab import gitlab_private, gitlab_secret_variables, gitlab_token_expiry
from policies.rules.gpu_pools import gpu_pool_autoscaling, gpu_pool_label_and_taint
from tests.unit.infra.mocks import RecordingMocks
from tests.unit.infra.test_cluster_program import EKS, TWO_POOLS, build

PACK = ALL

GKE_GPU_POOL = {
    "autoscaling": {"totalMinNodeCount": 0.0, "totalMaxNodeCount": 4.0},
    "nodeConfig": {
        "guestAccelerators": [{"type": "nvidia-tesla-t4", "count": 1.0}],
        "labels": {"mlenv.io/pool": "t4"},
        "taints": [{"key": "nvidia.com/gpu", "value": "present", "effect": "NO_SCHEDULE"}],
        "serviceAccount": "team-nodes@acme.iam.gserviceaccount.com",
    },
}
EKS_GPU_GROUP = {
    "amiType": "AL2023_x86_64_NVIDIA",
    "labels": {"mlenv.io/pool": "a10g"},
    "taints": [{"key": "nvidia.com/gpu", "value": "present", "effect": "NO_SCHEDULE"}],
    "scalingConfig": {"minSize": 0.0, "maxSize": 3.0, "desiredSize": 0.0},
}
GKE_CLUSTER = {
    "privateClusterConfig": {"enablePrivateNodes": True, "enablePrivateEndpoint": False},
    "masterAuthorizedNetworksConfig": {"cidrBlocks": [{"cidrBlock": "203.0.113.0/24"}]},
    "datapathProvider": "ADVANCED_DATAPATH",
}
VPC_CNI = {"addonName": "vpc-cni", "configurationValues": '{"enableNetworkPolicy": "true"}'}


def changed(props: dict, path: str, value: Any) -> dict:
    """A copy of props with one nested key set (value None deletes it)."""
    result = copy.deepcopy(props)
    *parents, last = path.split(".")
    target = result
    for key in parents:
        target = target[key]
    if value is None:
        target.pop(last, None)
    else:
        target[last] = value
    return result


def violations(policy: ResourceValidationPolicy, typ: str, props: dict, config: dict | None = None) -> list[str]:
    found: list[str] = []
    args = ResourceValidationArgs(
        typ, props, f"urn:pulumi:test::p::{typ}::res", "res", PolicyResourceOptions(False, [], None, None, [], []),
        None, config or {},
    )  # fmt: skip
    policy.validate(args, lambda message, urn=None: found.append(message))
    return found


POOL = "gcp:container/nodePool:NodePool"
VARIABLE = "gitlab:index/groupVariable:GroupVariable"
SECRET_VARIABLE = {"key": "MLFLOW_TRACKING_PASSWORD", "masked": True, "protected": True, "hidden": True}
GROUP = "aws:eks/nodeGroup:NodeGroup"
CASES = {
    # policy, resource type, passing props, failing props, words of the message
    "gke pool without label": (gpu_pool_label_and_taint, POOL, GKE_GPU_POOL,
                               changed(GKE_GPU_POOL, "nodeConfig.labels", {}), "no `mlenv.io/pool` label"),
    "gke pool without taint": (gpu_pool_label_and_taint, POOL, GKE_GPU_POOL,
                               changed(GKE_GPU_POOL, "nodeConfig.taints", []), "is not tainted"),
    "eks group with a PreferNoSchedule taint": (gpu_pool_label_and_taint, GROUP, EKS_GPU_GROUP,
                                                changed(EKS_GPU_GROUP, "taints", [{"key": "nvidia.com/gpu",
                                                        "value": "present", "effect": "PREFER_NO_SCHEDULE"}]),
                                                "is not tainted"),
    "gke pool idling on a GPU": (gpu_pool_autoscaling, POOL, GKE_GPU_POOL,
                                 changed(GKE_GPU_POOL, "autoscaling.totalMinNodeCount", 1.0), "set its minimum to 0"),
    "gke pool unbounded": (gpu_pool_autoscaling, POOL, GKE_GPU_POOL,
                           changed(GKE_GPU_POOL, "autoscaling.totalMaxNodeCount", 50.0), "keep its maximum ≤ 10"),
    "gke pool without autoscaling": (gpu_pool_autoscaling, POOL, GKE_GPU_POOL,
                                     changed(GKE_GPU_POOL, "autoscaling", None), "does not autoscale"),
    "eks group idling": (gpu_pool_autoscaling, GROUP, EKS_GPU_GROUP,
                         changed(EKS_GPU_GROUP, "scalingConfig.minSize", 2.0), "set its minimum to 0"),
    "gke public endpoint": (control_plane_not_public, "gcp:container/cluster:Cluster", GKE_CLUSTER,
                            changed(GKE_CLUSTER, "masterAuthorizedNetworksConfig.cidrBlocks",
                                    [{"cidrBlock": "0.0.0.0/0"}]), "the control plane is public"),
    "gke public nodes": (control_plane_not_public, "gcp:container/cluster:Cluster", GKE_CLUSTER,
                         changed(GKE_CLUSTER, "privateClusterConfig.enablePrivateNodes", False), "public IPs"),
    "eks open endpoint": (control_plane_not_public, "aws:eks/cluster:Cluster",
                          {"vpcConfig": {"endpointPublicAccess": False}},
                          {"vpcConfig": {"endpointPublicAccess": True}}, "open to the internet"),
    "gke without NetworkPolicy enforcement": (network_policies_enforced, "gcp:container/cluster:Cluster", GKE_CLUSTER,
                                              changed(GKE_CLUSTER, "datapathProvider", "LEGACY_DATAPATH"),
                                              "does not enforce NetworkPolicies"),
    "eks VPC CNI without its policy agent": (network_policies_enforced, "aws:eks/addon:Addon", VPC_CNI,
                                             changed(VPC_CNI, "configurationValues", "{}"), "enableNetworkPolicy"),
    "gke default service account": (node_identity, POOL, GKE_GPU_POOL,
                                    changed(GKE_GPU_POOL, "nodeConfig.serviceAccount", "default"),
                                    "default compute service account"),
    "eks IMDSv1": (node_identity, "aws:ec2/launchTemplate:LaunchTemplate",
                   {"metadataOptions": {"httpTokens": "required"}},
                   {"metadataOptions": {"httpTokens": "optional"}}, "allows IMDSv1"),
    "secret variable unmasked": (gitlab_secret_variables, VARIABLE, SECRET_VARIABLE,
                                 changed(SECRET_VARIABLE, "masked", False), "is not masked"),
    "secret variable unprotected": (gitlab_secret_variables, VARIABLE, SECRET_VARIABLE,
                                    changed(SECRET_VARIABLE, "protected", False), "is not protected"),
    "public project": (gitlab_private, "gitlab:index/project:Project", {"visibilityLevel": "private"},
                       {"visibilityLevel": "public"}, "has visibility 'public'"),
    "internal group": (gitlab_private, "gitlab:index/group:Group", {"visibilityLevel": "private"},
                       {"visibilityLevel": "internal"}, "has visibility 'internal'"),
    "deploy token forever": (gitlab_token_expiry, "gitlab:index/groupDeployToken:GroupDeployToken",
                             {"expiresAt": "2027-02-21", "scopes": ["read_registry"]},
                             {"scopes": ["read_registry"]}, "never expires"),
}  # fmt: skip


@pytest.mark.parametrize("name", CASES)
def test_policy_passes_the_safe_resource_and_rejects_the_unsafe_one(name: str) -> None:
    policy, typ, good, bad, words = CASES[name]
    assert violations(policy, typ, good) == []
    found = violations(policy, typ, bad)
    assert len(found) == 1 and words in found[0], found


def test_the_autoscaling_bound_is_configurable() -> None:
    wide = changed(GKE_GPU_POOL, "autoscaling.totalMaxNodeCount", 50.0)
    assert violations(gpu_pool_autoscaling, POOL, wide, {"maxNodes": 64}) == []


def test_plain_variables_need_not_be_masked() -> None:
    assert violations(gitlab_secret_variables, VARIABLE, {"key": "MLFLOW_TRACKING_URI", "masked": False}) == []


def test_the_gitlab_program_passes_the_whole_pack() -> None:
    from tests.unit.infra.test_gitlab_program import SUB
    from tests.unit.infra.test_gitlab_program import build as build_gitlab

    mocks = build_gitlab(SUB, hfToken="hf")
    for resource in mocks.resources:
        for policy in PACK:
            assert violations(policy, resource.typ, resource.inputs) == [], (policy.name, resource.name)


def test_cpu_pools_are_not_gpu_pools() -> None:
    cpu = changed(changed(GKE_GPU_POOL, "nodeConfig.guestAccelerators", []), "nodeConfig.taints", [])
    assert violations(gpu_pool_label_and_taint, POOL, cpu) == []
    assert violations(gpu_pool_autoscaling, POOL, changed(cpu, "autoscaling.totalMinNodeCount", 1.0)) == []


@pytest.mark.parametrize("config", [TWO_POOLS, EKS], ids=["gke", "eks"])
def test_the_cluster_program_passes_the_whole_pack(config: dict) -> None:
    mocks: RecordingMocks = build(config)
    checked = 0
    for resource in mocks.resources:
        for policy in PACK:
            assert violations(policy, resource.typ, resource.inputs) == [], (policy.name, resource.name)
            checked += 1
    assert checked >= 4 * len(PACK)
