"""Pod Security and NetworkPolicies of the cluster, offline: the pods the argo_workflows and kserve
roles render (and the patches they lay over Argo's and KServe's own controllers) are admitted at
the level the cluster program's namespaces enforce; the cluster program's default deny together
with the roles' allows lets through exactly the connections the ML loop makes."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from tests.conftest import PROJECT_ROOT
from tests.helpers.manifests import crd_dir, documents
from tests.helpers.network_policy import OUTSIDE, Pod, connects
from tests.helpers.pod_security import violations
from tests.k8s.render import run_role

pytestmark = pytest.mark.skipif(crd_dir() is None, reason="no CRD schemas (MLENV_CRD_DIR or scripts/fetch-crds)")

TEAM = "team"
SHARED = yaml.safe_load((PROJECT_ROOT / "ansible/vars/kubernetes_security.yml").read_text())


@pytest.fixture(scope="module")
def cluster() -> dict[str, Any]:
    """The cluster program's namespaces (their enforced level) and policies, under Pulumi's mocks."""
    from tests.unit.infra.test_cluster_program import TWO_POOLS, build

    mocks = build(TWO_POOLS)
    levels = {
        ns.inputs["metadata"]["name"]: ns.inputs["metadata"]["labels"]["pod-security.kubernetes.io/enforce"]
        for ns in mocks.of_type("kubernetes:core/v1:Namespace")
    }
    policies = [
        {"metadata": p.inputs["metadata"], "spec": p.inputs["spec"]}
        for p in mocks.of_type("kubernetes:networking.k8s.io/v1:NetworkPolicy")
    ]
    assert TEAM in levels and policies
    return {"levels": levels, "policies": policies}


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory, tool_env: dict[str, str]) -> list[dict]:
    tmp = tmp_path_factory.mktemp("cluster-roles")
    found = []
    for role, extra in {
        "argo_workflows": {
            "argo_workflows_team_namespace": TEAM, "argo_workflows_s3_endpoint": "s3.ml.example.com:443",
            "argo_workflows_s3_access_key": "a", "argo_workflows_s3_secret_key": "b",
            "argo_workflows_mlflow_password": "c", "argo_workflows_gpu_pools": [{"name": "t4", "gpus": 1}],
            "argo_workflows_ingress_host": "argo.ml.example.com",
        },
        "kserve": {
            "kserve_team_namespace": TEAM, "kserve_s3_endpoint": "s3.ml.example.com:8443",
            "kserve_s3_access_key": "a", "kserve_s3_secret_key": "b", "kserve_mlflow_password": "c",
            "kserve_ingress_namespace": "ingress-nginx",
            "kserve_models": [{"name": "iris", "storage_uri": "s3://mlflow/1/a/artifacts/model"},
                              {"name": "tickets", "alias": "production"}],
        },
    }.items():  # fmt: skip
        out = tmp / role
        work = tmp / f"{role}-work"
        work.mkdir()
        result = run_role(role, work, tool_env, **{f"{role}_apply": False, f"{role}_manifest_dir": str(out)}, **extra)
        assert result.returncode == 0, result.stdout[-3000:]
        found += [document for _, document in documents(out)]
    return found


def of_kind(rendered: list[dict], kind: str) -> list[dict]:
    return [d for d in rendered if d["kind"] == kind]


def executor_context(rendered: list[dict]) -> dict:
    (config,) = [d for d in of_kind(rendered, "ConfigMap") if d["metadata"]["name"] == "workflow-controller-configmap"]
    return yaml.safe_load(config["data"]["executor"])["securityContext"]


def workflow_pods(rendered: list[dict]) -> list[tuple[str, dict]]:
    """The pod Argo makes for each step: its init and wait containers (the controller's executor
    settings) beside the step's own container, the template's pod security context and volumes."""
    executor = executor_context(rendered)
    pods = []
    for template in of_kind(rendered, "WorkflowTemplate"):
        spec = template["spec"]
        for step in spec["templates"]:
            main = step.get("container") or step.get("script")
            if main is None and "resource" not in step:
                continue
            pods.append((f"{template['metadata']['name']}/{step['name']}", {
                "securityContext": spec.get("securityContext"),
                "volumes": spec.get("volumes"),
                "initContainers": [{"name": "init", "securityContext": executor}],
                "containers": [{"name": "wait", "securityContext": executor},
                               *([{"name": "main", **main}] if main else [])],
            }))  # fmt: skip
    return pods


def predictor_pods(rendered: list[dict]) -> list[tuple[str, dict]]:
    """The pod KServe makes for an InferenceService: the predictor's pod fields and the runtime's container."""
    (runtime,) = of_kind(rendered, "ServingRuntime")
    services = of_kind(rendered, "InferenceService")
    for step in [s for t in of_kind(rendered, "WorkflowTemplate") for s in t["spec"]["templates"] if "resource" in s]:
        services.append(yaml.safe_load(re.sub(r"\{\{[^}]+\}\}", "placeholder", step["resource"]["manifest"])))
    for config in of_kind(rendered, "ConfigMap"):
        if "settings.json" in config.get("data", {}):
            services += [m["service"] for m in yaml.safe_load(config["data"]["settings.json"]).get("models", [])]
    assert len(services) >= 4
    return [
        (service["metadata"]["name"], {
            **{k: v for k, v in service["spec"]["predictor"].items() if k != "model"},
            "containers": runtime["spec"]["containers"],
        })
        for service in services
    ]  # fmt: skip


def test_the_checker_refuses_what_each_level_forbids() -> None:
    admitted = {
        "securityContext": SHARED["mlenv_pod_security_context"],
        "containers": [{"name": "c", "securityContext": SHARED["mlenv_container_security_context"]}],
        "volumes": [{"name": "v", "emptyDir": {}}],
    }
    assert violations(admitted, "restricted") == []
    assert violations({"containers": [{"name": "c"}]}, "baseline") == []
    assert violations({"containers": [{"name": "c"}]}, "restricted")  # nothing set: not restricted
    baseline_breaks = {
        "hostNetwork": {"hostNetwork": True},
        "privileged": {"containers": [{"name": "c", "securityContext": {"privileged": True}}]},
        "hostPath": {"volumes": [{"name": "v", "hostPath": {"path": "/"}}]},
        "capability": {"containers": [{"name": "c", "securityContext": {"capabilities": {"add": ["SYS_ADMIN"]}}}]},
        "hostPort": {"containers": [{"name": "c", "ports": [{"containerPort": 80, "hostPort": 80}]}]},
        "seccomp": {"securityContext": {"seccompProfile": {"type": "Unconfined"}}},
    }
    for name, pod in baseline_breaks.items():
        assert violations(pod, "baseline"), name
    container = SHARED["mlenv_container_security_context"]
    restricted_breaks = {
        "escalation": {**container, "allowPrivilegeEscalation": True},
        "root": {**container, "runAsNonRoot": False},
        "capabilities": {**container, "capabilities": {"drop": ["NET_RAW"]}},
        "seccomp": {k: v for k, v in container.items() if k != "seccompProfile"},
    }
    for name, context in restricted_breaks.items():
        pod = {"containers": [{"name": "c", "securityContext": context}]}
        assert violations(pod, "baseline") == [] and violations(pod, "restricted"), name
    with_host_volume = {**admitted, "volumes": [{"name": "v", "nfs": {"server": "x", "path": "/"}}]}
    assert violations(with_host_volume, "restricted") == ["volume v is of kind ['nfs']"]


def test_every_pod_the_roles_render_is_admitted_at_restricted(rendered: list[dict], cluster: dict) -> None:
    """Stricter than the team namespace enforces (baseline): these pods run in any platform namespace."""
    deployments = {d["metadata"]["name"]: d["spec"]["template"]["spec"] for d in of_kind(rendered, "Deployment")}
    pods = [*workflow_pods(rendered), *predictor_pods(rendered), ("follower", deployments["mlenv-model-follow"]),
            ("gateway", deployments["mlenv-inference-gateway"])]  # fmt: skip
    assert len(pods) >= 10
    for name, pod in pods:
        assert violations(pod, "restricted") == [], name
        assert violations(pod, cluster["levels"][TEAM]) == [], name


@pytest.mark.parametrize(("role", "namespace", "containers"), [
    ("argo_workflows", "argo", ["workflow-controller", "argo-server"]),
    ("kserve", "kserve", ["manager"]),
])  # fmt: skip
def test_the_patch_over_the_upstream_controllers_admits_them(
    role: str, namespace: str, containers: list[str], cluster: dict
) -> None:
    """The upstream Deployments set their own security contexts (not all that restricted asks); the
    role replaces the pod's and the container's whole, so the upstream ones do not matter."""
    patch = yaml.safe_load((PROJECT_ROOT / f"ansible/roles/{role}/vars/main.yml").read_text())[
        f"_{role}_restricted_patch"
    ]
    values = {op["path"]: SHARED[re.fullmatch(r"\{\{ (\w+) \}\}", op["value"])[1]] for op in patch}
    assert all(op["op"] == "add" for op in patch)  # "add" replaces a member that exists
    for container in containers:
        pod = {
            "securityContext": values["/spec/template/spec/securityContext"],
            "containers": [{"name": container, "securityContext": values[
                "/spec/template/spec/containers/0/securityContext"]}],
        }  # fmt: skip
        assert violations(pod, cluster["levels"][namespace]) == [], container


def policies(rendered: list[dict], cluster: dict) -> list[dict]:
    return cluster["policies"] + of_kind(rendered, "NetworkPolicy")


STEP = Pod(TEAM, {"workflows.argoproj.io/workflow": "train-abc"})
PREDICTOR = Pod(TEAM, {"component": "predictor", "serving.kserve.io/inferenceservice": "tickets"})
FOLLOWER = Pod(TEAM, {"app.kubernetes.io/name": "mlenv-model-follow"})
GATEWAY = Pod(TEAM, {"app.kubernetes.io/name": "mlenv-inference-gateway", "app.kubernetes.io/part-of": "mlenv"})
OTHER_TEAM_POD = Pod(TEAM, {"app": "notebook"})
INGRESS = Pod("ingress-nginx", {"app.kubernetes.io/name": "ingress-nginx"})
ELSEWHERE = Pod("default", {"app": "anything"})
CONTROLLER = Pod("argo", {"app": "workflow-controller"})
SERVER = Pod("argo", {"app": "argo-server"})
KSERVE = Pod("kserve", {"control-plane": "kserve-controller-manager"})
DNS = Pod("kube-system", {"k8s-app": "kube-dns"})


# (from, to, port, let through, why): what the ML loop needs passes, the rest is refused.
CONNECTIONS = [
    (STEP, OUTSIDE, 443, True, "steps reach MLflow, S3 through the proxy and the API server"),
    (STEP, PREDICTOR, 8080, True, "the smoke step asks the new predictor"),
    (GATEWAY, PREDICTOR, 8080, True, "callers come through the authenticating gateway"),
    (INGRESS, GATEWAY, 8080, True, "from outside the cluster through the ingress to the gateway"),
    (PREDICTOR, OUTSIDE, 8443, True, "the storage initializer reads the object store (its port)"),
    (FOLLOWER, OUTSIDE, 443, True, "the follower reads MLflow and patches InferenceServices"),
    (CONTROLLER, OUTSIDE, 443, True, "the workflow controller watches the API server"),
    (OUTSIDE, KSERVE, 9443, True, "the API server calls KServe's webhooks"),
    (INGRESS, SERVER, 2746, True, "the Argo UI through its ingress"),
    (STEP, DNS, 53, True, "every pod resolves names"),
    (PREDICTOR, DNS, 53, True, "every pod resolves names"),
    (OTHER_TEAM_POD, PREDICTOR, 8080, False, "a team pod that is no workflow step"),
    (INGRESS, PREDICTOR, 8080, False, "the ingress past the gateway"),
    (ELSEWHERE, GATEWAY, 8080, False, "the gateway from another namespace than the team's and the ingress"),
    (GATEWAY, OUTSIDE, 443, False, "the gateway calling out"),
    (GATEWAY, FOLLOWER, 8080, False, "the gateway to pods other than predictors"),
    (ELSEWHERE, PREDICTOR, 8080, False, "another namespace"),
    (OUTSIDE, PREDICTOR, 8080, False, "from outside the cluster, past the ingress"),
    (STEP, FOLLOWER, 8080, False, "pod to pod other than the predictors"),
    (PREDICTOR, OUTSIDE, 443, False, "a predictor calling out beyond the object store"),
    (PREDICTOR, STEP, 8080, False, "a predictor calling into a step"),
    (ELSEWHERE, SERVER, 2746, False, "the Argo server from anywhere but the ingress"),
    (ELSEWHERE, CONTROLLER, 9090, False, "the controller's metrics"),
    (STEP, OUTSIDE, 22, False, "ports other than HTTPS and the object store's"),
    (STEP, KSERVE, 9443, False, "the KServe webhook from a pod"),
]


@pytest.mark.parametrize(("source", "target", "port", "expected", "why"), CONNECTIONS, ids=[c[-1] for c in CONNECTIONS])
def test_the_ml_loop_connections_pass_and_nothing_else(
    rendered: list[dict], cluster: dict, source: Pod | None, target: Pod | None, port: int, expected: bool, why: str
) -> None:
    assert connects(policies(rendered, cluster), source, target, port) is expected, why


def test_without_default_deny_the_checks_above_would_pass_everything(rendered: list[dict]) -> None:
    """The refusals come from the policies, not from the evaluator: with none, all goes through."""
    assert connects([], OTHER_TEAM_POD, PREDICTOR, 8080) and connects([], PREDICTOR, OUTSIDE, 443)
    roles_only = of_kind(rendered, "NetworkPolicy")
    assert not connects(roles_only, OTHER_TEAM_POD, PREDICTOR, 8080)  # the predictors' own policy
    assert connects(roles_only, OTHER_TEAM_POD, ELSEWHERE, 8080)  # only the default deny stops this
