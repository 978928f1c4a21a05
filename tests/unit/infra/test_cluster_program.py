"""pulumi/cluster under Pulumi's mocks: the resource graph for several configs, and bad configs stopped
before any resource exists."""

from __future__ import annotations

import asyncio
import copy

import pulumi
import pytest

from mlenv.config import Cluster
from tests.unit.infra.mocks import RecordingMocks, assert_rejected, run_program

NODE_POOL = "gcp:container/nodePool:NodePool"
NAMESPACE = "kubernetes:core/v1:Namespace"
T4 = {"name": "t4", "machine_type": "n1-standard-8", "accelerator": "nvidia-tesla-t4", "max_nodes": 4, "spot": True}
A100 = {"name": "a100", "machine_type": "a2-highgpu-1g", "accelerator": "nvidia-tesla-a100", "max_nodes": 2}
ONE_POOL = {"provider": "gke", "region": "europe-west4", "project": "acme-ml", "gpu_pools": [T4]}
TWO_POOLS = {**ONE_POOL, "gpu_pools": [T4, A100], "authorized_networks": ["203.0.113.0/24"]}


A10G = {"name": "a10g", "machine_type": "g5.2xlarge", "accelerator": "nvidia-a10g", "max_nodes": 3, "spot": True}
EKS = {
    "provider": "eks",
    "region": "eu-west-1",
    "subnet_ids": ["subnet-a", "subnet-b"],
    "authorized_networks": ["203.0.113.0/24"],
    "gpu_pools": [A10G],
}


def build(cluster: dict, mocks: RecordingMocks | None = None) -> RecordingMocks:
    return run_program("cluster", "mlenv-cluster", {"environment": "team", "cluster": cluster}, mocks)


def gpu_pools(mocks: RecordingMocks) -> dict[str, dict]:
    return {pool.name: pool.inputs for pool in mocks.of_type(NODE_POOL) if "-gpu-" in pool.name}


@pytest.mark.parametrize("config", [ONE_POOL, TWO_POOLS], ids=["one-pool", "two-accelerators"])
def test_every_gpu_pool_is_labeled_tainted_and_scales_from_zero(config: dict) -> None:
    pools = gpu_pools(build(config))
    assert sorted(pools) == sorted(f"team-gpu-{pool['name']}" for pool in config["gpu_pools"])
    for spec in config["gpu_pools"]:
        urn = f"team-gpu-{spec['name']}"
        node = pools[urn]["nodeConfig"]
        assert node["labels"]["mlenv.io/pool"] == spec["name"], urn
        assert node["taints"] == [{"key": "nvidia.com/gpu", "value": "present", "effect": "NO_SCHEDULE"}], urn
        assert node["guestAccelerators"][0]["type"] == spec["accelerator"], urn
        assert node["guestAccelerators"][0]["gpuDriverInstallationConfig"]["gpuDriverVersion"] == "LATEST", urn
        assert node["spot"] is spec.get("spot", False), urn
        assert not node["serviceAccount"].startswith("default"), urn
        assert node["workloadMetadataConfig"]["mode"] == "GKE_METADATA", urn
        scaling = pools[urn]["autoscaling"]
        assert (scaling["totalMinNodeCount"], scaling["totalMaxNodeCount"]) == (0, spec["max_nodes"]), urn
        assert set(pools[urn]["nodeLocations"]) <= {"europe-west4-a", "europe-west4-b", "europe-west4-c"}, urn


def test_eks_gpu_groups_use_the_nvidia_ami_label_taint_and_scale_from_zero() -> None:
    mocks = build(EKS)
    groups = {group.name: group.inputs for group in mocks.of_type("aws:eks/nodeGroup:NodeGroup")}
    assert sorted(groups) == ["team-gpu-a10g", "team-system"]
    gpu = groups["team-gpu-a10g"]
    assert gpu["amiType"] == "AL2023_x86_64_NVIDIA" and gpu["instanceTypes"] == ["g5.2xlarge"]
    assert gpu["labels"] == {"mlenv.io/pool": "a10g", "mlenv.io/accelerator": "nvidia-a10g"}
    assert gpu["taints"] == [{"key": "nvidia.com/gpu", "value": "present", "effect": "NO_SCHEDULE"}]
    assert (gpu["scalingConfig"]["minSize"], gpu["scalingConfig"]["maxSize"]) == (0, 3)
    assert gpu["capacityType"] == "SPOT"
    assert "taints" not in groups["team-system"] or groups["team-system"]["taints"] == []
    (template,) = mocks.of_type("aws:ec2/launchTemplate:LaunchTemplate")
    assert template.inputs["metadataOptions"]["httpTokens"] == "required"
    assert all(group["launchTemplate"]["id"] == "team-nodes-id" for group in groups.values())
    (cluster,) = mocks.of_type("aws:eks/cluster:Cluster")
    assert cluster.inputs["vpcConfig"]["publicAccessCidrs"] == ["203.0.113.0/24"]
    assert cluster.inputs["vpcConfig"]["endpointPrivateAccess"] is True


def test_the_system_pool_is_not_a_gpu_pool() -> None:
    system = [pool for pool in build(ONE_POOL).of_type(NODE_POOL) if pool.name == "team-system"]
    assert len(system) == 1
    assert "taints" not in system[0].inputs["nodeConfig"] and "guestAccelerators" not in system[0].inputs["nodeConfig"]


@pytest.mark.parametrize(("config", "private_endpoint"), [(ONE_POOL, True), (TWO_POOLS, False)])
def test_nodes_are_private_and_the_endpoint_is_closed_or_restricted(config: dict, private_endpoint: bool) -> None:
    (cluster,) = build(config).of_type("gcp:container/cluster:Cluster")
    private = cluster.inputs["privateClusterConfig"]
    assert private["enablePrivateNodes"] is True
    assert private["enablePrivateEndpoint"] is private_endpoint
    blocks = cluster.inputs["masterAuthorizedNetworksConfig"].get("cidrBlocks", [])
    assert [block["cidrBlock"] for block in blocks] == config.get("authorized_networks", [])
    assert cluster.inputs["workloadIdentityConfig"]["workloadPool"] == "acme-ml.svc.id.goog"
    assert cluster.inputs["removeDefaultNodePool"] is True


def test_kubeconfig_output_is_a_secret() -> None:
    from mlenv.infra.gke import GkeGpuCluster

    pulumi.runtime.set_mocks(RecordingMocks(), project="mlenv-cluster", stack="test", preview=False)

    @pulumi.runtime.test
    def check() -> object:
        cluster = GkeGpuCluster("team", Cluster.model_validate(ONE_POOL))

        async def secret_and_usable() -> None:
            assert await cluster.kubeconfig.is_secret()
            text = await cluster.kubeconfig.future()
            assert "server: https://203.0.113.10" in text and "gke-gcloud-auth-plugin" in text

        return asyncio.ensure_future(secret_and_usable())

    check()


def with_pool(**changes: object) -> dict:
    config = copy.deepcopy(ONE_POOL)
    config["gpu_pools"][0].update(changes)
    return config


BAD = {
    "unknown accelerator for the region": (
        {**ONE_POOL, "region": "us-east1", "gpu_pools": [A100]},
        "nvidia-tesla-a100 is not offered in us-east1",
    ),
    "unknown accelerator": (with_pool(accelerator="nvidia-gtx-1080"), "unknown GKE accelerator 'nvidia-gtx-1080'"),
    "max below min": (with_pool(min_nodes=3, max_nodes=1), "max_nodes (1) is below min_nodes (3)"),
    "GPU count 0": (with_pool(accelerator_count=0), "accelerator_count"),
    "missing region": ({k: v for k, v in ONE_POOL.items() if k != "region"}, "region"),
    "unbounded pool": (with_pool(max_nodes=1000), "max_nodes"),
    "public control plane": ({**ONE_POOL, "authorized_networks": ["0.0.0.0/0"]}, "must not contain 0.0.0.0/0"),
    "duplicate pool names": ({**ONE_POOL, "gpu_pools": [T4, T4]}, "two `gpu_pools` have the same name"),
    "gke without project": ({k: v for k, v in ONE_POOL.items() if k != "project"}, "needs `project`"),
    "eks with a CPU instance type": (
        {**EKS, "gpu_pools": [{**A10G, "machine_type": "m6i.large"}]},
        "'m6i.large' is not a GPU instance type",
    ),
    "eks accelerator that the instance lacks": (
        {**EKS, "gpu_pools": [{**A10G, "accelerator": "nvidia-h100"}]},
        "g5.2xlarge carries nvidia-a10g, not nvidia-h100",
    ),
    "eks without subnets": ({**EKS, "subnet_ids": []}, "needs `subnet_ids`"),
}


@pytest.mark.parametrize("name", BAD)
def test_bad_config_raises_before_any_resource(name: str) -> None:
    assert_rejected(build, *BAD[name])


@pytest.mark.parametrize(("config", "plugin"), [(TWO_POOLS, False), (EKS, True)], ids=["gke", "eks"])
def test_bootstrap_namespaces_priority_quota_and_device_plugin(config: dict, plugin: bool) -> None:
    mocks = build(config)
    namespaces = {ns.inputs["metadata"]["name"]: ns.inputs["metadata"]["labels"] for ns in mocks.of_type(NAMESPACE)}
    assert sorted(namespaces) == ["argo", "kserve", "mlenv-system", "team"]
    assert namespaces["team"]["pod-security.kubernetes.io/enforce"] == "baseline"
    assert namespaces["argo"]["pod-security.kubernetes.io/enforce"] == "restricted"
    (priority,) = mocks.of_type("kubernetes:scheduling.k8s.io/v1:PriorityClass")
    assert priority.inputs["metadata"]["name"] == "mlenv-gpu" and priority.inputs["globalDefault"] is False
    (quota,) = mocks.of_type("kubernetes:core/v1:ResourceQuota")
    gpus = sum(pool.get("accelerator_count", 1) * pool["max_nodes"] for pool in config["gpu_pools"])
    assert quota.inputs["spec"]["hard"]["requests.nvidia.com/gpu"] == str(gpus)
    assert quota.inputs["metadata"]["namespace"] == "team"
    (limits,) = mocks.of_type("kubernetes:core/v1:LimitRange")
    assert limits.inputs["spec"]["limits"][0]["defaultRequest"] == {"cpu": "250m", "memory": "256Mi"}
    daemonsets = mocks.of_type("kubernetes:apps/v1:DaemonSet")
    assert len(daemonsets) == int(plugin)
    if plugin:
        pod = daemonsets[0].inputs["spec"]["template"]["spec"]
        assert {"key": "nvidia.com/gpu", "operator": "Equal", "value": "present", "effect": "NoSchedule"} in pod[
            "tolerations"
        ]
        container = pod["containers"][0]
        assert container["image"].startswith("nvcr.io/nvidia/k8s-device-plugin:v")
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        assert container["resources"]["requests"]


def test_ansible_and_pulumi_share_one_gpu_placement() -> None:
    import yaml

    from mlenv.infra import placement
    from mlenv.infra.bootstrap import GPU_PRIORITY_CLASS
    from tests.unit.infra.mocks import ROOT

    ansible = yaml.safe_load((ROOT / "ansible/vars/gpu_placement.yml").read_text())
    assert ansible["mlenv_gpu_pool_label"] == placement.POOL_LABEL
    assert ansible["mlenv_gpu_toleration"] == placement.gpu_toleration()
    assert ansible["mlenv_gpu_priority_class"] == GPU_PRIORITY_CLASS


def test_every_namespace_denies_all_traffic_but_dns() -> None:
    from tests.helpers.manifests import validate

    mocks = build(TWO_POOLS)
    policies: dict[str, dict[str, dict]] = {}
    for policy in mocks.of_type("kubernetes:networking.k8s.io/v1:NetworkPolicy"):
        metadata = policy.inputs["metadata"]
        policies.setdefault(metadata["namespace"], {})[metadata["name"]] = policy.inputs["spec"]
        validate({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", **policy.inputs})
    assert sorted(policies) == ["argo", "kserve", "mlenv-system", "team"]
    for namespace, found in policies.items():
        deny, dns = found["mlenv-default-deny"], found["mlenv-allow-dns"]
        # Both directions, every pod, no rule: nothing passes but what another policy allows.
        assert deny == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}, namespace
        assert dns["podSelector"] == {} and dns["policyTypes"] == ["Egress"] and "ingress" not in dns
        (rule,) = dns["egress"]
        assert rule["to"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                               "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}]  # fmt: skip
        assert sorted((p["protocol"], p["port"]) for p in rule["ports"]) == [("TCP", 53), ("UDP", 53)]


@pytest.mark.parametrize("config", [TWO_POOLS, EKS], ids=["gke", "eks"])
def test_the_cluster_enforces_the_network_policies(config: dict) -> None:
    """Without an enforcing dataplane a NetworkPolicy is only an object: GKE runs Dataplane V2, EKS's
    VPC CNI runs its policy agent."""
    import json

    mocks = build(config)
    if config is TWO_POOLS:
        (cluster,) = mocks.of_type("gcp:container/cluster:Cluster")
        assert cluster.inputs["datapathProvider"] == "ADVANCED_DATAPATH"
    else:
        (addon,) = mocks.of_type("aws:eks/addon:Addon")
        assert addon.inputs["addonName"] == "vpc-cni"
        assert json.loads(addon.inputs["configurationValues"]) == {"enableNetworkPolicy": "true"}
