"""The kserve role's manifests, rendered for real by the role (apply off) and validated offline against the
Kubernetes schemas and the KServe CRDs at v0.20.0, then their wiring."""

from __future__ import annotations

import copy
import hashlib
import json
import re
from pathlib import Path

import pytest

from tests.conftest import ROLES_DIR, module_from
from tests.helpers.manifests import KUBERNETES_VERSIONS, ManifestError, crd_dir, documents, validate
from tests.k8s.render import missing_cluster_kubeconfig, run_role

FOLLOW_PY = ROLES_DIR / "kserve/files/follow.py"
follow = module_from(FOLLOW_PY, "kserve_follow")

pytestmark = pytest.mark.skipif(crd_dir() is None, reason="no CRD schemas (MLENV_CRD_DIR or scripts/fetch-crds)")

GATEWAY_PASSWORD = "example-gateway-password-0123"
GATEWAY_PY = ROLES_DIR / "kserve/files/gateway.py"
LOG_TOKEN = "example-prediction-log-token-0123456789"
MODELS = [
    {"name": "iris-gpu", "storage_uri": "s3://mlflow/1/abc/artifacts/model", "pool": "t4"},
    {"name": "iris", "storage_uri": "s3://mlflow/1/def/artifacts/model"},
    # Served at whatever version the alias points to: the follower makes and moves these.
    {"name": "tickets", "alias": "production"},
    {"name": "tickets-gpu", "alias": "production", "pool": "t4"},
]


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory, tool_env: dict[str, str]) -> list[dict]:
    tmp = tmp_path_factory.mktemp("kserve")
    ca = tmp / "ca.crt"
    ca.write_text("-----BEGIN CERTIFICATE-----\nMIIBexample\n-----END CERTIFICATE-----\n")
    # With --diff, as `mlenv plan` runs: a new file's diff is its whole content.
    result = run_role(
        "kserve", tmp, tool_env, "--diff",
        kserve_apply=False, kserve_manifest_dir=str(tmp / "out"), kserve_team_namespace="team",
        kserve_s3_endpoint="s3.ml.example.com:443", kserve_s3_ca_file=str(ca), kserve_s3_access_key="AKIAEXAMPLE",
        kserve_s3_secret_key="example-secret", kserve_gpu_pools=[{"name": "t4"}], kserve_models=MODELS,
        kserve_mlflow_tracking_uri="https://mlflow.ml.example.com", kserve_mlflow_password="example-password",
        kserve_gateway_password=GATEWAY_PASSWORD,
        kserve_gateway_prediction_log_url="https://loop.ml.example.com/api/predictions",
        kserve_gateway_prediction_log_token=LOG_TOKEN,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:]
    rendered_output.append(result.stdout)
    return [document for _, document in documents(tmp / "out")]


rendered_output: list[str] = []


def test_no_secret_shows_in_the_output_of_a_diff_run(rendered: list[dict]) -> None:
    secrets = [d for d in rendered if d["kind"] == "Secret"]
    assert secrets and "example-secret" in str(secrets) and "example-password" in str(secrets)
    assert "example-secret" not in rendered_output[0] and "example-password" not in rendered_output[0]
    assert GATEWAY_PASSWORD not in rendered_output[0] and LOG_TOKEN not in rendered_output[0]


def test_the_gateway_runs_the_shipped_script_and_keeps_only_a_hash_of_its_password(rendered: list[dict]) -> None:
    secret = named(rendered, "Secret")["mlenv-inference-gateway"]
    assert GATEWAY_PASSWORD not in json.dumps(rendered)
    credentials = json.loads(secret["stringData"]["credentials.json"])
    assert credentials == {"users": {"mlenv": hashlib.sha256(f"mlenv:{GATEWAY_PASSWORD}".encode()).hexdigest()}}
    files = named(rendered, "ConfigMap")["mlenv-inference-gateway"]["data"]
    assert files["gateway.py"] == GATEWAY_PY.read_text()
    settings = json.loads(files["settings.json"])
    assert settings["upstream"] == "http://{model}-predictor.{namespace}.svc.cluster.local"
    assert settings["namespace"] == "team" and settings["credentials_file"].startswith(
        "/etc/mlenv-gateway/credentials/"
    )
    pod = named(rendered, "Deployment")["mlenv-inference-gateway"]["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    (container,) = pod["containers"]
    assert container["command"][1:] == ["/opt/mlenv-gateway/gateway.py", "/opt/mlenv-gateway/settings.json"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"
    service = named(rendered, "Service")["mlenv-inference-gateway"]
    assert service["spec"]["ports"] == [{"name": "http", "port": 80, "targetPort": "http"}]


def test_the_gateway_logs_what_it_answers_to_the_trigger_service_trusting_the_platforms_ca(rendered) -> None:
    settings = json.loads(named(rendered, "ConfigMap")["mlenv-inference-gateway"]["data"]["settings.json"])
    assert settings["prediction_log"] == {"url": "https://loop.ml.example.com/api/predictions",
                                          "token_file": "/etc/mlenv-gateway/credentials/prediction_log_token",
                                          "ca_file": "/etc/mlenv/ca/cabundle.crt"}  # fmt: skip
    secret = named(rendered, "Secret")["mlenv-inference-gateway"]
    assert secret["stringData"]["prediction_log_token"] == LOG_TOKEN
    pod = named(rendered, "Deployment")["mlenv-inference-gateway"]["spec"]["template"]["spec"]
    mounts = {mount["name"]: mount["mountPath"] for mount in pod["containers"][0]["volumeMounts"]}
    assert (
        mounts["ca"] == "/etc/mlenv/ca" and {"name": "ca", "configMap": {"name": "mlenv-platform-ca"}} in pod["volumes"]
    )


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


def merge_patch(target: object, patch: object) -> object:
    """The object after a JSON merge patch (RFC 7386), as the API server applies the follower's."""
    if not isinstance(patch, dict):
        return patch
    merged = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = merge_patch(merged.get(key), value)
    return merged


def follower_settings(rendered: list[dict]) -> dict:
    return json.loads(named(rendered, "ConfigMap")["mlenv-model-follow"]["data"]["settings.json"])


def test_only_fixed_models_are_rendered_the_followed_ones_are_the_followers(rendered: list[dict]) -> None:
    assert set(named(rendered, "InferenceService")) == {"iris", "iris-gpu"}
    settings = follower_settings(rendered)
    followed = [(model["name"], model["alias"]) for model in settings["models"]]
    assert followed == [("tickets", "production"), ("tickets-gpu", "production")]
    assert settings["mlflow_url"] == "https://mlflow.ml.example.com"
    assert (settings["bucket"], settings["namespace"]) == ("mlflow", "team")


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_what_the_follower_creates_and_patches_is_a_valid_inference_service(rendered: list[dict], version: str) -> None:
    for model in follower_settings(rendered)["models"]:
        created = follow.wanted(model["service"], model["alias"], "3", "s3://mlflow/1/models/m-3/artifacts")
        validate(created, version)
        assert created["spec"]["predictor"]["serviceAccountName"] == "mlenv-kserve-s3"
        action, patch = follow.change(created, follow.wanted(model["service"], "production", "2", "s3://mlflow/m-2"))
        assert action == "patch"
        validate(merge_patch(created, patch), version)
    gpu = follower_settings(rendered)["models"][1]["service"]["spec"]["predictor"]
    assert gpu["nodeSelector"] == {"mlenv.io/pool": "t4"} and gpu["model"]["resources"]["limits"]["nvidia.com/gpu"] == 1


def test_the_follower_may_touch_only_the_inference_services_it_follows(rendered: list[dict]) -> None:
    role = named(rendered, "Role")["mlenv-model-follow"]
    assert role["rules"] == [
        {"apiGroups": ["serving.kserve.io"], "resources": ["inferenceservices"], "verbs": ["create"]},
        {"apiGroups": ["serving.kserve.io"], "resources": ["inferenceservices"],
         "resourceNames": ["tickets", "tickets-gpu"], "verbs": ["get", "patch"]},
    ]  # fmt: skip
    binding = named(rendered, "RoleBinding")["mlenv-model-follow"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "mlenv-model-follow", "namespace": "team"}]
    assert binding["roleRef"]["name"] == "mlenv-model-follow"


def test_the_follower_runs_unprivileged_the_shipped_script_with_its_secret_from_a_secret(rendered: list[dict]) -> None:
    deployment = named(rendered, "Deployment")["mlenv-model-follow"]
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert pod["serviceAccountName"] == "mlenv-model-follow"
    assert pod["securityContext"]["runAsNonRoot"] is True
    context = container["securityContext"]
    assert context["allowPrivilegeEscalation"] is False and context["readOnlyRootFilesystem"] is True
    assert context["capabilities"] == {"drop": ["ALL"]} and context["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["image"] == "docker.io/seldonio/mlserver:1.7.1-mlflow"  # the runtime's, already pulled
    env = {item["name"]: item for item in container["env"]}
    password = env["MLFLOW_TRACKING_PASSWORD"]["valueFrom"]["secretKeyRef"]
    assert password == {"name": "mlenv-model-follow", "key": "password"}
    assert env["MLENV_CA_FILE"]["value"] == "/etc/mlenv/ca/cabundle.crt"
    files = named(rendered, "ConfigMap")["mlenv-model-follow"]["data"]
    assert files["follow.py"] == FOLLOW_PY.read_text()
    assert "example-password" not in json.dumps(files)
    assert named(rendered, "Secret")["mlenv-model-follow"]["stringData"]["password"] == "example-password"
    # A new script or new settings roll the pod.
    annotation = deployment["spec"]["template"]["metadata"]["annotations"]["mlenv.io/config-sha256"]
    assert re.fullmatch("[0-9a-f]{64}", annotation)


def test_no_followed_model_renders_no_follower(tmp_path: Path, tool_env: dict[str, str]) -> None:
    result = run_role(
        "kserve", tmp_path, tool_env,
        kserve_apply=False, kserve_manifest_dir=str(tmp_path / "out"), kserve_s3_access_key="a",
        kserve_s3_secret_key="b", kserve_models=MODELS[1:2], kserve_mlflow_password="p",
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:]
    found = [document for _, document in documents(tmp_path / "out")]
    names = {(document["kind"], document["metadata"]["name"]) for document in found}
    assert not {name for kind, name in names if kind in ("Deployment", "Role")} - {"mlenv-inference-gateway"}
    assert ("Role", "mlenv-model-follow") not in names and "InferenceService" in {kind for kind, _ in names}
