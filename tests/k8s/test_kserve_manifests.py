"""The kserve role's manifests, rendered for real by the role (apply off) and validated offline against the
Kubernetes schemas and the KServe CRDs at v0.20.0, then their wiring."""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path

import pytest

from tests.helpers.manifests import KUBERNETES_VERSIONS, ManifestError, crd_dir, documents, validate
from tests.k8s.render import missing_cluster_kubeconfig, run_role

pytestmark = pytest.mark.skipif(crd_dir() is None, reason="no CRD schemas (MLENV_CRD_DIR or scripts/fetch-crds)")

MODELS = [
    {"name": "iris-gpu", "storage_uri": "s3://mlflow/1/abc/artifacts/model", "pool": "t4"},
    {"name": "iris", "storage_uri": "s3://mlflow/1/def/artifacts/model"},
]


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory, tool_env: dict[str, str]) -> list[dict]:
    tmp = tmp_path_factory.mktemp("kserve")
    ca = tmp / "ca.crt"
    ca.write_text("-----BEGIN CERTIFICATE-----\nMIIBexample\n-----END CERTIFICATE-----\n")
    result = run_role(
        "kserve", tmp, tool_env,
        kserve_apply=False, kserve_manifest_dir=str(tmp / "out"), kserve_team_namespace="team",
        kserve_s3_endpoint="s3.ml.example.com:443", kserve_s3_ca_file=str(ca), kserve_s3_access_key="AKIAEXAMPLE",
        kserve_s3_secret_key="example-secret", kserve_gpu_pools=[{"name": "t4"}], kserve_models=MODELS,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:]
    return [document for _, document in documents(tmp / "out")]


def named(rendered: list[dict], kind: str) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in rendered if d["kind"] == kind}


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_rendered_object_is_valid(rendered: list[dict], version: str) -> None:
    for document in rendered:
        validate(document, version)
    assert len(rendered) >= 7


def test_a_misspelled_predictor_field_is_caught(rendered: list[dict]) -> None:
    service = copy.deepcopy(named(rendered, "InferenceService")["iris"])
    service["spec"]["predictor"]["model"]["storageURI"] = service["spec"]["predictor"]["model"].pop("storageUri")
    with pytest.raises(ManifestError, match="storageURI"):
        validate(service)


def test_standard_mode_and_the_storage_initializer_trusts_the_platform_ca(rendered: list[dict]) -> None:
    config = named(rendered, "ConfigMap")["inferenceservice-config"]
    assert json.loads(config["data"]["deploy"]) == {"defaultDeploymentMode": "Standard"}
    initializer = json.loads(config["data"]["storageInitializer"])
    assert initializer["image"] == "kserve/storage-initializer:v0.20.0"
    assert initializer["caBundleConfigMapName"] in named(rendered, "ConfigMap")
    assert all(
        s["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "Standard"
        for s in named(rendered, "InferenceService").values()
    )


def test_predictors_read_the_bucket_through_the_annotated_account(rendered: list[dict]) -> None:
    secret = named(rendered, "Secret")["mlenv-kserve-s3"]
    annotations = secret["metadata"]["annotations"]
    assert annotations["serving.kserve.io/s3-endpoint"] == "s3.ml.example.com:443"
    assert annotations["serving.kserve.io/s3-usehttps"] == "1"
    assert set(secret["stringData"]) == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
    account = named(rendered, "ServiceAccount")["mlenv-kserve-s3"]
    assert account["secrets"] == [{"name": "mlenv-kserve-s3"}]
    for service in named(rendered, "InferenceService").values():
        predictor = service["spec"]["predictor"]
        assert predictor["serviceAccountName"] == "mlenv-kserve-s3"
        assert predictor["model"]["storageUri"].startswith("s3://mlflow/")
        assert predictor["model"]["runtime"] == "mlenv-mlflow"


def test_gpu_predictors_carry_the_pool_selector_and_toleration(rendered: list[dict]) -> None:
    services = named(rendered, "InferenceService")
    gpu = services["iris-gpu"]["spec"]["predictor"]
    assert gpu["nodeSelector"] == {"mlenv.io/pool": "t4"}
    assert gpu["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Equal", "value": "present", "effect": "NoSchedule"}
    ]
    assert gpu["model"]["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert "nodeSelector" not in services["iris"]["spec"]["predictor"]


def test_the_mlflow_runtime_is_enabled_and_unprivileged(rendered: list[dict]) -> None:
    runtime = named(rendered, "ServingRuntime")["mlenv-mlflow"]
    assert runtime["spec"]["supportedModelFormats"][0]["name"] == "mlflow"
    assert runtime["spec"]["supportedModelFormats"][0]["autoSelect"] is True
    container = runtime["spec"]["containers"][0]
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["resources"]["requests"]


def test_check_mode_against_a_missing_cluster_fails_clearly(tmp_path: Path, tool_env: dict[str, str]) -> None:
    kubeconfig = missing_cluster_kubeconfig(tmp_path)
    result = run_role(
        "kserve", tmp_path, tool_env, "--check", "--diff",
        kserve_apply=True, kserve_manifest_sha256=hashlib.sha256(b"x").hexdigest(), kserve_kubeconfig=str(kubeconfig),
        kserve_manifest_dir=str(tmp_path / "out"), kserve_s3_access_key="a", kserve_s3_secret_key="b",
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "Traceback" not in output, output[-3000:]
    assert "The Kubernetes API cannot be reached with " + str(kubeconfig) in " ".join(output.split()), output[-3000:]
