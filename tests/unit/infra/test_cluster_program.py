"""pulumi/cluster under Pulumi's mocks: the resource graph for several configs, and bad configs stopped
before any resource exists."""

from __future__ import annotations

import asyncio
import copy

import pulumi
import pytest

from mlenv.config import Cluster
from tests.unit.infra.mocks import RecordingMocks, run_program

NODE_POOL = "gcp:container/nodePool:NodePool"
T4 = {"name": "t4", "machine_type": "n1-standard-8", "accelerator": "nvidia-tesla-t4", "max_nodes": 4, "spot": True}
A100 = {"name": "a100", "machine_type": "a2-highgpu-1g", "accelerator": "nvidia-tesla-a100", "max_nodes": 2}
ONE_POOL = {"provider": "gke", "region": "europe-west4", "project": "acme-ml", "gpu_pools": [T4]}
TWO_POOLS = {**ONE_POOL, "gpu_pools": [T4, A100], "authorized_networks": ["203.0.113.0/24"]}


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
}


@pytest.mark.parametrize("name", BAD)
def test_bad_config_raises_before_any_resource(name: str) -> None:
    config, expected = BAD[name]
    mocks = RecordingMocks()
    with pytest.raises(Exception) as raised:
        build(config, mocks)
    assert expected in str(raised.value)
    assert mocks.resources == [], "a resource was registered before the config was rejected"
