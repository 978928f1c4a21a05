"""docs/runbooks/add-gpu-pool.md, as written: its mlenv.yaml block validates, the cluster program built from it
has the new pool labelled, tainted and scaling from zero, the whole policy pack passes the graph, and the pool
reaches the settings of Argo Workflows and KServe."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from mlenv.config import MlenvConfig
from mlenv.handover import kubernetes_vars
from tests.conftest import PROJECT_ROOT
from tests.unit.infra.test_cluster_program import NODE_POOL, build
from tests.unit.infra.test_policies import PACK, violations

PAGE = PROJECT_ROOT / "docs/runbooks/add-gpu-pool.md"
TAINT = [{"key": "nvidia.com/gpu", "value": "present", "effect": "NO_SCHEDULE"}]


def page_config() -> MlenvConfig:
    (block,) = re.findall(r"^```yaml\n(.*?)^```", PAGE.read_text(), flags=re.S | re.M)
    return MlenvConfig.model_validate(yaml.safe_load(block))


@pytest.fixture(scope="module")
def graph() -> tuple[MlenvConfig, object]:
    config = page_config()
    assert config.cloud is not None
    return config, build(json.loads(config.cloud.cluster.model_dump_json()))


def test_the_new_pool_is_labelled_tainted_and_scales_from_zero(graph: tuple) -> None:
    _, mocks = graph
    pools = {pool.name: pool.inputs for pool in mocks.of_type(NODE_POOL) if "-gpu-" in pool.name}
    assert sorted(pools) == ["team-gpu-a100", "team-gpu-t4"]
    node = pools["team-gpu-a100"]["nodeConfig"]
    assert node["labels"]["mlenv.io/pool"] == "a100" and node["taints"] == TAINT
    assert node["guestAccelerators"][0]["type"] == "nvidia-tesla-a100"
    scaling = pools["team-gpu-a100"]["autoscaling"]
    assert (scaling["totalMinNodeCount"], scaling["totalMaxNodeCount"]) == (0, 2)


def test_the_policy_pack_passes_the_graph_with_the_new_pool(graph: tuple) -> None:
    _, mocks = graph
    for resource in mocks.resources:
        for policy in PACK:
            assert violations(policy, resource.typ, resource.inputs) == [], (policy.name, resource.name)


def test_the_new_pool_reaches_the_workflows_and_the_predictors(graph: tuple, tmp_path: Path) -> None:
    config, _ = graph
    outputs = {"gpu_pools": [{"name": pool.name} for pool in config.cloud.cluster.gpu_pools]}
    found = kubernetes_vars(config, tmp_path, outputs)
    assert {"name": "a100", "gpus": 1} in found["argo_workflows_gpu_pools"]
    assert {"name": "a100"} in found["kserve_gpu_pools"]


def test_a_second_pool_of_the_same_name_is_refused_before_anything_runs() -> None:
    data = page_config().model_dump(mode="json", exclude_none=True)
    pools = data["cloud"]["cluster"]["gpu_pools"]
    pools.append(dict(pools[-1]))
    with pytest.raises(ValueError, match="two `gpu_pools` have the same name"):
        MlenvConfig.model_validate(data)
