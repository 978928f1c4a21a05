"""Both Kubernetes roles converged on a real cluster, the CPU workflow submitted, the model served,
then taken over by the follower; callers reach it through the inference gateway with its password
only, and a team pod that is no workflow step cannot reach the predictor (the NetworkPolicies).

Runs only when KUBECONFIG names a cluster (kind, k3s or the cloud one) and the upstream manifests'
checksums are given (MLENV_TEST_ARGO_SHA256, MLENV_TEST_KSERVE_SHA256), with an MLflow and object
store it can reach (MLENV_TEST_PLATFORM: a YAML file of the roles' variables: endpoints, keys, CA,
the MLflow account). Elsewhere pytest reports it as skipped with the reason, never as passed.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.k8s.render import run_role

NEEDED = ("KUBECONFIG", "MLENV_TEST_ARGO_SHA256", "MLENV_TEST_KSERVE_SHA256", "MLENV_TEST_PLATFORM")
pytestmark = [
    pytest.mark.needs_kubeconfig,
    pytest.mark.skipif(
        not all(os.environ.get(name) for name in NEEDED), reason=f"needs a real cluster: set {', '.join(NEEDED)}"
    ),
]
TIMEOUT_S = 1800


def kubectl(*args: str) -> str:
    return subprocess.run(["kubectl", *args], capture_output=True, text=True, check=True, timeout=120).stdout


def test_roles_converge_then_the_cpu_workflow_trains_registers_and_serves(tmp_path: Path, tool_env) -> None:
    platform = yaml.safe_load(Path(os.environ["MLENV_TEST_PLATFORM"]).read_text())
    for role, checksum in (("argo_workflows", "MLENV_TEST_ARGO_SHA256"), ("kserve", "MLENV_TEST_KSERVE_SHA256")):
        settings = {key: value for key, value in platform.items() if key.startswith(role)}
        settings[f"{role}_manifest_sha256"] = os.environ[checksum]
        settings[f"{role}_manifest_dir"] = str(tmp_path / role)
        (tmp_path / role).mkdir()
        result = run_role(role, tmp_path / role, tool_env, **settings)
        assert result.returncode == 0, result.stdout[-4000:]

    namespace = platform.get("argo_workflows_team_namespace", "ml-team")
    workflow = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"generateName": "mlenv-it-", "namespace": namespace},
        "spec": {
            "workflowTemplateRef": {"name": "train-register-deploy-cpu"},
            "arguments": {"parameters": [{"name": "model-name", "value": f"mlenv-it-{int(time.time())}"}]},
        },
    }
    created = subprocess.run(
        ["kubectl", "create", "-o", "jsonpath={.metadata.name}", "-f", "-"],
        input=json.dumps(workflow), capture_output=True, text=True, check=True, timeout=120,
    ).stdout  # fmt: skip
    name = created.strip()
    deadline = time.monotonic() + TIMEOUT_S
    phase = ""
    while time.monotonic() < deadline:
        phase = kubectl("get", "workflow", name, "-n", namespace, "-o", "jsonpath={.status.phase}")
        if phase in {"Succeeded", "Failed", "Error"}:
            break
        time.sleep(10)
    assert phase == "Succeeded", kubectl("get", "workflow", name, "-n", namespace, "-o", "yaml")[-4000:]
    model = workflow["spec"]["arguments"]["parameters"][0]["value"]
    ready = kubectl("get", "inferenceservice", model, "-n", namespace, "-o", "jsonpath={.status.conditions}")
    assert any(c["type"] == "Ready" and c["status"] == "True" for c in json.loads(ready))

    # The follower takes the model over: it finds the InferenceService the workflow made and marks it
    # with the version behind `production` (the same path moves it on a promotion or a rollback).
    settings = {key: value for key, value in platform.items() if key.startswith("kserve")}
    settings.update(
        kserve_manifest_sha256=os.environ["MLENV_TEST_KSERVE_SHA256"], kserve_manifest_dir=str(tmp_path / "follow"),
        kserve_models=[{"name": model, "alias": "production"}], kserve_follow_seconds=5,
    )  # fmt: skip
    (tmp_path / "follow").mkdir()
    result = run_role("kserve", tmp_path / "follow", tool_env, **settings)
    assert result.returncode == 0, result.stdout[-4000:]
    annotation = "jsonpath={.metadata.annotations.mlenv\\.io/model-version}"
    deadline = time.monotonic() + 300
    version = ""
    while time.monotonic() < deadline and not version:
        version = kubectl("get", "inferenceservice", model, "-n", namespace, "-o", annotation).strip()
        time.sleep(5)
    logs = subprocess.run(["kubectl", "logs", "-n", namespace, "deployment/mlenv-model-follow"],
                          capture_output=True, text=True, timeout=120).stdout  # fmt: skip
    assert version == "1", logs[-4000:]

    # Callers reach the model through the inference gateway, with its password, and not around it.
    password = (tmp_path / "follow/secrets/kserve/gateway_password").read_text().split()[0]
    forward = subprocess.Popen(["kubectl", "port-forward", "-n", namespace, "svc/mlenv-inference-gateway", "18080:80"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        time.sleep(3)
        ready = f"http://127.0.0.1:18080/v2/models/{model}/ready"
        assert http_status(ready) == 401
        assert http_status(ready, ("mlenv", "not-the-password")) == 401
        assert http_status(ready, ("mlenv", password)) == 200
    finally:
        forward.terminate()
        forward.wait(timeout=30)
    # A pod of the team that is neither a workflow step nor the gateway: the NetworkPolicies stop it.
    probe = (
        "import urllib.request\n"
        "try:\n"
        f"    urllib.request.urlopen('http://{model}-predictor.{namespace}/v2/health/ready', timeout=10)\n"
        "    print('reached')\n"
        "except Exception as error:\n"
        "    print('refused', type(error).__name__)\n"
    )
    image = platform.get("kserve_mlflow_runtime_image", "docker.io/seldonio/mlserver:1.7.1-mlflow")
    answer = kubectl("run", f"mlenv-it-probe-{int(time.time())}", "-n", namespace, "--rm", "-i", "--restart=Never",
                     f"--image={image}", "--command", "--", "python", "-c", probe)  # fmt: skip
    assert "refused" in answer and "reached" not in answer, answer


def http_status(url: str, login: tuple[str, str] | None = None) -> int:
    request = urllib.request.Request(url)
    if login:
        request.add_header("Authorization", "Basic " + base64.b64encode(":".join(login).encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def test_the_clusters_prometheus_runs_and_scrapes_itself(tmp_path: Path, tool_env) -> None:
    """The cluster_metrics role applied for real (the cluster program's mlenv-system namespace must exist):
    Prometheus becomes available, its rules are loaded, and its own target is up (asked through the API
    server's service proxy, the way the NetworkPolicy leaves open)."""
    platform = yaml.safe_load(Path(os.environ["MLENV_TEST_PLATFORM"]).read_text())
    settings = {key: value for key, value in platform.items() if key.startswith("cluster_metrics")}
    result = run_role("cluster_metrics", tmp_path, tool_env, cluster_metrics_manifest_dir=str(tmp_path / "out"),
                      **settings)  # fmt: skip
    assert result.returncode == 0, result.stdout[-4000:]
    api = "/api/v1/namespaces/mlenv-system/services/mlenv-prometheus:9090/proxy/api/v1"
    deadline, up = time.monotonic() + 300, []
    while time.monotonic() < deadline and not up:
        targets = json.loads(kubectl("get", "--raw", f"{api}/targets"))["data"]["activeTargets"]
        up = [t for t in targets if t["labels"]["job"] == "prometheus" and t["health"] == "up"]
        time.sleep(0 if up else 10)
    assert up, targets
    rules = json.loads(kubectl("get", "--raw", f"{api}/rules"))["data"]["groups"][0]["rules"]
    assert {"TargetDown", "GpuIdle", "GpuXidErrors"} <= {rule["name"] for rule in rules}
