"""pulumi/gitlab for real through the Automation API: preview with the policy pack, up, outputs, destroy.

Runs only with the `pulumi` CLI, GITLAB_TOKEN (api scope, owner of the parent group if any) and
MLENV_TEST_GITLAB_CONFIG naming a YAML file with `gitlab:` and `platform:` sections; otherwise pytest
reports it as skipped with the reason. It creates a group on that GitLab and deletes it at the end.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CONFIG = os.environ.get("MLENV_TEST_GITLAB_CONFIG", "")

pytestmark = [
    pytest.mark.needs_cloud,
    pytest.mark.skipif(shutil.which("pulumi") is None, reason="no pulumi CLI (https://www.pulumi.com/docs/install/)"),
    pytest.mark.skipif(not os.environ.get("GITLAB_TOKEN"), reason="GITLAB_TOKEN is not set"),
    pytest.mark.skipif(not CONFIG, reason="MLENV_TEST_GITLAB_CONFIG is not set (gitlab: and platform: YAML)"),
]


def test_preview_up_outputs_destroy() -> None:
    from pulumi import automation as auto

    settings = yaml.safe_load(Path(CONFIG).read_text())
    stack = auto.create_or_select_stack(
        stack_name=os.environ.get("MLENV_TEST_STACK", "mlenv-it"), work_dir=str(ROOT / "pulumi/gitlab")
    )
    stack.set_config("gitlab", auto.ConfigValue(value=json.dumps(settings["gitlab"])))
    stack.set_config("platform", auto.ConfigValue(value=json.dumps(settings["platform"])))
    stack.set_config("gitlab:baseUrl", auto.ConfigValue(value=settings["gitlab"]["url"].rstrip("/") + "/api/v4"))
    for key in ("mlflowPassword", "awsAccessKeyId", "awsSecretAccessKey"):
        stack.set_config(key, auto.ConfigValue(value=f"it-{key}-value", secret=True))
    try:
        stack.preview(policy_packs=[str(ROOT / "policies")])
        outputs = stack.up(policy_packs=[str(ROOT / "policies")], on_output=print).outputs
        assert outputs["trigger_token"].secret and outputs["runner_configs"].secret
        assert outputs["group_path"].value.endswith(settings["gitlab"]["group_path"])
    finally:
        stack.destroy(on_output=print)
