"""The argo_workflows role's manifests, rendered for real by the role (apply off) and validated offline:
core kinds against the Kubernetes schemas, Argo and KServe kinds against the upstream CRDs at the
pinned tags, with unknown fields rejected; then the wiring between them."""

from __future__ import annotations

import copy
import hashlib
import json
import re
from pathlib import Path

import pytest
import yaml

from tests.conftest import PROJECT_ROOT
from tests.helpers.manifests import KUBERNETES_VERSIONS, ManifestError, crd_dir, documents, validate
from tests.k8s.render import missing_cluster_kubeconfig, run_role

pytestmark = pytest.mark.skipif(crd_dir() is None, reason="no CRD schemas (MLENV_CRD_DIR or scripts/fetch-crds)")

POOLS = [{"name": "t4", "gpus": 1}, {"name": "a100", "gpus": 2}]


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory, tool_env: dict[str, str]) -> dict[str, list[dict]]:
    tmp = tmp_path_factory.mktemp("argo")
    ca = tmp / "ca.crt"
    ca.write_text("-----BEGIN CERTIFICATE-----\nMIIBexample\n-----END CERTIFICATE-----\n")
    out = tmp / "manifests"
    # With --diff, as `mlenv plan` runs: a new file's diff is its whole content.
    result = run_role(
        "argo_workflows", tmp, tool_env, "--diff",
        argo_workflows_apply=False, argo_workflows_manifest_dir=str(out), argo_workflows_team_namespace="team",
        argo_workflows_s3_endpoint="s3.ml.example.com:443", argo_workflows_s3_ca_file=str(ca),
        argo_workflows_s3_access_key="AKIAEXAMPLE", argo_workflows_s3_secret_key="example-secret",
        argo_workflows_mlflow_password="example-password", argo_workflows_gpu_pools=POOLS,
        argo_workflows_mlflow_tracking_uri="https://mlflow.ml.example.com",
        argo_workflows_ingress_host="argo.ml.example.com", argo_workflows_submitter_token_file=str(tmp / "loop_token"),
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:]
    rendered_output.append(result.stdout)
    found: dict[str, list[dict]] = {}
    for path, document in documents(out):
        found.setdefault(path.name, []).append(document)
    return found


rendered_output: list[str] = []


def test_no_secret_shows_in_the_output_of_a_diff_run(rendered: dict[str, list[dict]]) -> None:
    secrets = [d for docs in rendered.values() for d in docs if d["kind"] == "Secret"]
    assert secrets and "example-secret" in str(secrets) and "example-password" in str(secrets)
    assert "example-secret" not in rendered_output[0] and "example-password" not in rendered_output[0]


def objects(rendered: dict[str, list[dict]], kind: str) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for docs in rendered.values() for d in docs if d["kind"] == kind}


def embedded_inference_services(template: dict) -> list[dict]:
    """The InferenceService each resource step applies, with Argo's placeholders filled in."""
    found = []
    for step in template["spec"]["templates"]:
        if "resource" in step:
            text = re.sub(r"\{\{[^}]+\}\}", "placeholder", step["resource"]["manifest"])
            found.append(yaml.safe_load(text))
    return found


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_rendered_object_is_valid(rendered: dict[str, list[dict]], version: str) -> None:
    checked = 0
    for docs in rendered.values():
        for document in docs:
            validate(document, version)
            checked += 1
    assert checked >= 8


def test_the_embedded_inference_services_are_valid(rendered: dict[str, list[dict]]) -> None:
    services = [s for t in objects(rendered, "WorkflowTemplate").values() for s in embedded_inference_services(t)]
    assert len(services) == 2
    for service in services:
        validate(service)


def test_a_misspelled_field_is_caught(rendered: dict[str, list[dict]]) -> None:
    template = copy.deepcopy(objects(rendered, "WorkflowTemplate")["train-register-deploy"])
    template["spec"]["templates"][1]["script"]["resourcess"] = template["spec"]["templates"][1]["script"].pop(
        "resources"
    )
    with pytest.raises(ManifestError, match="resourcess"):
        validate(template)
    config_map = copy.deepcopy(objects(rendered, "ConfigMap")["artifact-repositories"])
    config_map["metadata"]["annotation"] = config_map["metadata"].pop("annotations")
    with pytest.raises(ManifestError, match="annotation"):
        validate(config_map)


def test_artifact_repository_points_at_the_bucket_the_secret_and_the_ca(rendered: dict[str, list[dict]]) -> None:
    config_map = objects(rendered, "ConfigMap")["artifact-repositories"]
    default = config_map["metadata"]["annotations"]["workflows.argoproj.io/default-artifact-repository"]
    s3 = yaml.safe_load(config_map["data"][default])["s3"]
    assert (s3["bucket"], s3["endpoint"], s3["insecure"]) == ("argo", "s3.ml.example.com:443", False)
    secrets = objects(rendered, "Secret")
    for reference in (s3["accessKeySecret"], s3["secretKeySecret"], s3["caSecret"]):
        assert reference["key"] in secrets[reference["name"]]["stringData"], reference
    assert secrets["mlenv-platform-ca"]["stringData"]["ca.crt"].startswith("-----BEGIN CERTIFICATE-----")


def test_gpu_steps_and_predictors_are_placed_on_the_pool(rendered: dict[str, list[dict]]) -> None:
    gpu = objects(rendered, "WorkflowTemplate")["train-register-deploy"]
    pool = next(p for p in gpu["spec"]["arguments"]["parameters"] if p["name"] == "pool")
    assert pool["value"] == "t4" and pool["enum"] == ["t4", "a100"]
    train = next(t for t in gpu["spec"]["templates"] if t["name"] == "train")
    toleration = {"key": "nvidia.com/gpu", "operator": "Equal", "value": "present", "effect": "NoSchedule"}
    assert train["nodeSelector"] == {"mlenv.io/pool": "{{workflow.parameters.pool}}"}
    assert train["tolerations"] == [toleration]
    assert train["script"]["resources"]["limits"]["nvidia.com/gpu"] == 1
    (predictor,) = [s["spec"]["predictor"] for s in embedded_inference_services(gpu)]
    assert predictor["tolerations"] == [toleration] and "mlenv.io/pool" in predictor["nodeSelector"]
    cpu = objects(rendered, "WorkflowTemplate")["train-register-deploy-cpu"]
    assert "nvidia.com/gpu" not in json.dumps(cpu)


def test_no_container_is_privileged_and_every_container_has_requests(rendered: dict[str, list[dict]]) -> None:
    containers = [
        (template["metadata"]["name"], step["name"], step.get("container") or step.get("script"))
        for template in objects(rendered, "WorkflowTemplate").values()
        for step in template["spec"]["templates"]
        if "container" in step or "script" in step
    ]
    assert len(containers) >= 6  # train, resolve-production and smoke, on GPU and on CPU
    for workflow, step, container in containers:
        security = container.get("securityContext", {})
        assert security.get("privileged") is not True and security.get("allowPrivilegeEscalation") is False, step
        assert security.get("runAsNonRoot") is True, (workflow, step)
        assert container["resources"]["requests"], (workflow, step)


def test_workflows_run_as_the_least_privilege_account(rendered: dict[str, list[dict]]) -> None:
    role = objects(rendered, "Role")["mlenv-workflow"]
    verbs = {
        (rule["apiGroups"][0], resource): set(rule["verbs"]) for rule in role["rules"] for resource in rule["resources"]
    }
    assert verbs[("argoproj.io", "workflowtaskresults")] == {"create", "patch"}
    assert not any("delete" in v or "*" in v for v in verbs.values())
    assert all(
        t["spec"]["serviceAccountName"] == "mlenv-workflow" for t in objects(rendered, "WorkflowTemplate").values()
    )


def test_check_mode_against_a_missing_cluster_fails_clearly(tmp_path: Path, tool_env: dict[str, str]) -> None:
    manifest = tmp_path / "install.yaml"
    manifest.write_text("apiVersion: v1\nkind: Namespace\nmetadata: {name: argo}\n")

    kubeconfig = missing_cluster_kubeconfig(tmp_path)
    result = run_role(
        "argo_workflows", tmp_path, tool_env, "--check", "--diff",
        argo_workflows_apply=True, argo_workflows_manifest_url=manifest.as_uri(),
        argo_workflows_manifest_sha256=hashlib.sha256(manifest.read_bytes()).hexdigest(),
        argo_workflows_manifest_dir=str(tmp_path / "out"), argo_workflows_kubeconfig=str(kubeconfig),
        argo_workflows_s3_access_key="a", argo_workflows_s3_secret_key="b", argo_workflows_mlflow_password="c",
    )  # fmt: skip
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "Traceback" not in output, output[-3000:]
    assert "The Kubernetes API cannot be reached with " + str(kubeconfig) in " ".join(output.split()), output[-3000:]
    assert not (tmp_path / "out" / "install-4.1.2.yaml").exists(), "check mode downloaded or changed something"


def test_the_optional_ingress_serves_the_ui_over_tls(rendered: dict[str, list[dict]]) -> None:
    (ingress,) = objects(rendered, "Ingress").values()
    assert ingress["spec"]["tls"] == [{"hosts": ["argo.ml.example.com"], "secretName": "argo-server-tls"}]
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": "argo-server", "port": {"number": 2746}}


def test_the_workflow_trains_with_the_projects_entry_point_on_the_version_it_is_given(rendered):
    project = objects(rendered, "ConfigMap")["mlenv-starter-project"]
    template = PROJECT_ROOT / "templates/ml-project"
    # Ansible's file lookup drops the final newline.
    assert project["data"] == {name: (template / name).read_text().rstrip("\n") for name in ("train.py",
                               "requirements.txt", "requirements.lock")}  # fmt: skip
    for workflow in objects(rendered, "WorkflowTemplate").values():
        parameters = {p["name"]: p for p in workflow["spec"]["arguments"]["parameters"]}
        assert "value" not in parameters["dataset-version"]  # no toy default: the caller names the version
        steps = {t["name"]: t for t in workflow["spec"]["templates"]}
        train = steps["train"]["script"]
        assert 'python /project/train.py --dataset "$DATASET_VERSION"' in train["source"]
        # Every step that installs packages installs the project's lock, hash-checked.
        for step in steps.values():
            source = (step.get("script") or {}).get("source", "")
            assert "pip install" not in source or "--require-hashes -r /project/requirements.lock" in source
        assert "pip install --quiet --user --require-hashes -r /project/requirements.lock" in train["source"]
        assert "--require-hashes -r /project/requirements.lock" in steps["resolve-production"]["script"]["source"]
        env = {e["name"]: e for e in train["env"]}
        assert env["DATASET_VERSION"]["value"] == "{{workflow.parameters.dataset-version}}"
        assert env["AWS_ENDPOINT_URL_S3"]["value"] == "https://s3.ml.example.com:443"
        assert env["AWS_ACCESS_KEY_ID"]["valueFrom"]["secretKeyRef"]["name"] == "mlenv-argo-s3"
        assert env["REQUESTS_CA_BUNDLE"]["value"] == "/etc/mlenv/ca/ca.crt"
        assert {m["mountPath"] for m in train["volumeMounts"]} == {"/project", "/etc/mlenv/ca"}
        assert "load_iris" not in json.dumps(workflow)
        later = [step for group in steps["main"]["steps"] for step in group if step["name"] != "train"]
        assert [step["name"] for step in later] == ["resolve", "deploy", "smoke"]
        assert all(step["when"] == "{{steps.train.outputs.parameters.decision}} == production" for step in later)


@pytest.mark.parametrize("template", ["train-register-deploy", "train-register-deploy-cpu"])
def test_the_trigger_service_submits_a_valid_workflow_of_the_roles_template(rendered, template):
    """What the trigger service's Argo runner POSTs: valid against the pinned Workflow CRD, and every
    parameter it gives is one the role's template declares (the rest keep their defaults)."""
    from mlenv_loop.service.config import ArgoRunner
    from mlenv_loop.service.runners import workflow

    run = {"id": "tickets-0123456789ab", "dataset": "tickets", "version": "0123456789abcdef", "model": "tickets",
           "trigger": "20 new annotation events (every 20)"}  # fmt: skip
    settings = ArgoRunner(kind="argo", api_url="https://k8s.example.com", namespace="team", template=template,
                          ca_file="", token="token")  # fmt: skip
    submitted = workflow(settings, run)
    validate(submitted)
    declared = objects(rendered, "WorkflowTemplate")[template]
    assert declared["metadata"]["namespace"] == submitted["metadata"]["namespace"]
    given = {parameter["name"] for parameter in submitted["spec"]["arguments"]["parameters"]}
    assert given <= {parameter["name"] for parameter in declared["spec"]["arguments"]["parameters"]}
    assert "dataset-version" in given
    broken = copy.deepcopy(submitted)
    broken["spec"]["workflowTemplateRef"]["nmae"] = template
    with pytest.raises(ManifestError, match="nmae"):
        validate(broken)


def test_the_trigger_service_account_may_only_create_and_read_workflows(rendered: dict[str, list[dict]]) -> None:
    role = objects(rendered, "Role")["mlenv-loop-submitter"]
    assert role["rules"] == [{"apiGroups": ["argoproj.io"], "resources": ["workflows"], "verbs": ["create", "get"]}]
    binding = objects(rendered, "RoleBinding")["mlenv-loop-submitter"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "mlenv-loop-submitter", "namespace": "team"}]
    token = objects(rendered, "Secret")["mlenv-loop-submitter-token"]
    assert token["type"] == "kubernetes.io/service-account-token"
    assert token["metadata"]["annotations"] == {"kubernetes.io/service-account.name": "mlenv-loop-submitter"}
    assert objects(rendered, "ServiceAccount")["mlenv-loop-submitter"]["automountServiceAccountToken"] is False


def test_without_a_token_file_there_is_no_submitting_account(tmp_path: Path, tool_env: dict[str, str]) -> None:
    result = run_role(
        "argo_workflows", tmp_path, tool_env,
        argo_workflows_apply=False, argo_workflows_manifest_dir=str(tmp_path / "out"), argo_workflows_s3_access_key="a",
        argo_workflows_s3_secret_key="b", argo_workflows_mlflow_password="p",
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:]
    assert not (tmp_path / "out/submitter.yaml").exists()
    assert (tmp_path / "out/rbac.yaml").is_file()
