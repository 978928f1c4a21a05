"""`mlenv up` on the cloud profile for real: cluster → services and the Kubernetes platform → GitLab.

Runs only with the `pulumi` CLI, cloud credentials, GITLAB_TOKEN when the config has `gitlab:`, and
MLENV_TEST_CLOUD_CONFIG naming an mlenv.yaml with `profile: cloud` whose inventory lists reachable
hosts; elsewhere pytest reports it as skipped with the reason. It creates billable resources and
destroys them at the end (`mlenv down --purge`); the hosts' services stay.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

CONFIG = os.environ.get("MLENV_TEST_CLOUD_CONFIG", "")
MLENV = [str(Path(sys.executable).parent / "mlenv")]

pytestmark = [
    pytest.mark.needs_cloud,
    pytest.mark.skipif(shutil.which("pulumi") is None, reason="no pulumi CLI (https://www.pulumi.com/docs/install/)"),
    pytest.mark.skipif(not CONFIG, reason="MLENV_TEST_CLOUD_CONFIG is not set (an mlenv.yaml with profile: cloud)"),
]


def mlenv(*args: str, env: dict[str, str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*MLENV, *args], env=env, input=stdin, capture_output=True, text=True, check=False)


def test_up_status_and_purge(tmp_path: Path) -> None:
    from mlenv.config import load

    config = load(Path(CONFIG))
    env = {**os.environ, "MLENV_CONFIG": CONFIG, "MLENV_STATE_DIR": str(tmp_path), "CI": "1"}
    try:
        planned = mlenv("plan", env=env)
        assert planned.returncode == 0, planned.stdout + planned.stderr
        assert "pulumi/cluster would: create" in planned.stdout
        result = mlenv("up", env=env)
        assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
        kubeconfig = tmp_path / "secrets/kubeconfig"
        assert stat.S_IMODE(kubeconfig.stat().st_mode) == 0o600
        cluster = json.loads((tmp_path / "cluster.json").read_text())
        assert [pool["name"] for pool in cluster["gpu_pools"]] == [p.name for p in config.cloud.cluster.gpu_pools]
        if config.cloud.gitlab is not None:
            assert (tmp_path / "secrets/gitlab/trigger_token").stat().st_size > 0
        status = mlenv("status", env=env)
        assert status.returncode == 0, status.stdout
        again = mlenv("up", env=env)
        assert again.returncode == 0 and ", 0 changes;" in again.stdout, again.stdout[-3000:]
    finally:
        purged = mlenv("down", "--purge", env=env, stdin=f"{config.environment}\n")
        assert purged.returncode == 0, purged.stdout + purged.stderr
