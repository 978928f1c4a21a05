"""pulumi/cluster for real through the Automation API: preview, up, check the outputs, destroy.

Runs only where the `pulumi` CLI and cloud credentials exist and MLENV_TEST_CLUSTER_CONFIG names a
cluster config (the `cloud.cluster` YAML, e.g. one small spot pool); otherwise it is reported as
skipped with the reason, never as passed. It creates billable resources and destroys them at the end.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CONFIG = os.environ.get("MLENV_TEST_CLUSTER_CONFIG", "")

pytestmark = [
    pytest.mark.needs_cloud,
    pytest.mark.skipif(shutil.which("pulumi") is None, reason="no pulumi CLI (https://www.pulumi.com/docs/install/)"),
    pytest.mark.skipif(not CONFIG, reason="MLENV_TEST_CLUSTER_CONFIG is not set (a cloud.cluster YAML file)"),
]


def test_preview_up_outputs_destroy() -> None:
    from pulumi import automation as auto

    from mlenv.config import Cluster

    spec = Cluster.model_validate(yaml.safe_load(Path(CONFIG).read_text()))
    stack = auto.create_or_select_stack(
        stack_name=os.environ.get("MLENV_TEST_STACK", "mlenv-it"), work_dir=str(ROOT / "pulumi/cluster")
    )
    stack.set_config("environment", auto.ConfigValue(value="mlenv-it"))
    stack.set_config("cluster", auto.ConfigValue(value=spec.model_dump_json()))
    try:
        preview = stack.preview(policy_packs=[str(ROOT / "policies")])
        assert preview.change_summary.get("create", 0) > 0
        result = stack.up(policy_packs=[str(ROOT / "policies")], on_output=print)
        outputs = result.outputs
        assert outputs["kubeconfig"].secret
        assert outputs["region"].value == spec.region
        assert [pool["name"] for pool in outputs["gpu_pools"].value] == [pool.name for pool in spec.gpu_pools]
    finally:
        stack.destroy(on_output=print)
