"""The cluster_metrics role's manifests, rendered for real by the role (apply off) and checked offline: every
document against the Kubernetes schemas (strict), Prometheus admitted where the cluster program's namespace
enforces restricted, the DCGM exporter placed on each GPU pool like every GPU workload, and the default deny
with the role's policy letting Prometheus reach exactly the exporters and the API server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import PROJECT_ROOT
from tests.helpers.manifests import KUBERNETES_VERSIONS, documents, validate
from tests.helpers.network_policy import OUTSIDE, Pod, connects
from tests.helpers.pod_security import violations
from tests.k8s.render import run_role

PLACEMENT = yaml.safe_load((PROJECT_ROOT / "ansible/vars/gpu_placement.yml").read_text())
POOLS = [{"name": "t4"}, {"name": "a100"}]
PROMETHEUS = Pod("mlenv-system", {"app.kubernetes.io/name": "mlenv-prometheus", "app.kubernetes.io/part-of": "mlenv"})
EXPORTER = Pod(
    "kube-system",
    {"app.kubernetes.io/name": "mlenv-dcgm-exporter", "app.kubernetes.io/part-of": "mlenv", "mlenv.io/pool": "t4"},
)


def render(tmp: Path, env: dict[str, str], **role_vars: Any) -> list[dict]:
    out = tmp / "out"
    result = run_role("cluster_metrics", tmp, env, cluster_metrics_apply=False, cluster_metrics_manifest_dir=str(out),
                      mlenv_environment="team", **role_vars)  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:]
    return [document for _, document in documents(out)]


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory, tool_env: dict[str, str]) -> list[dict]:
    return render(tmp_path_factory.mktemp("cluster-metrics"), tool_env, cluster_metrics_gpu_pools=POOLS)


def named(rendered: list[dict], kind: str) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in rendered if d["kind"] == kind}


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_document_is_valid_kubernetes(rendered: list[dict], version: str) -> None:
    assert {d["kind"] for d in rendered} == {
        "ServiceAccount", "Role", "RoleBinding", "ConfigMap", "Deployment", "Service", "NetworkPolicy", "DaemonSet",
    }  # fmt: skip
    for document in rendered:
        validate(document, version)


def test_prometheus_is_admitted_where_the_cluster_program_enforces_restricted(rendered: list[dict]) -> None:
    from tests.unit.infra.test_cluster_program import TWO_POOLS, build

    levels = {
        ns.inputs["metadata"]["name"]: ns.inputs["metadata"]["labels"]["pod-security.kubernetes.io/enforce"]
        for ns in build(TWO_POOLS).of_type("kubernetes:core/v1:Namespace")
    }
    deployment = named(rendered, "Deployment")["mlenv-prometheus"]
    assert levels[deployment["metadata"]["namespace"]] == "restricted"
    assert violations(deployment["spec"]["template"]["spec"], "restricted") == []


def test_each_gpu_pool_runs_the_exporter_placed_like_every_gpu_workload(rendered: list[dict]) -> None:
    daemonsets = named(rendered, "DaemonSet")
    assert set(daemonsets) == {"mlenv-dcgm-exporter-t4", "mlenv-dcgm-exporter-a100"}
    for pool in POOLS:
        spec = daemonsets[f"mlenv-dcgm-exporter-{pool['name']}"]["spec"]["template"]
        assert spec["spec"]["nodeSelector"] == {PLACEMENT["mlenv_gpu_pool_label"]: pool["name"]}
        assert spec["spec"]["tolerations"] == [PLACEMENT["mlenv_gpu_toleration"]]
        assert spec["metadata"]["labels"]["mlenv.io/pool"] == pool["name"]
        # Baseline at most would refuse its host path: it runs beside the device plugin, in kube-system.
        assert violations(spec["spec"], "baseline") and spec["spec"]["containers"][0]["securityContext"][
            "capabilities"] == {"drop": ["ALL"]}  # fmt: skip


def test_without_gpu_pools_there_is_no_exporter(tmp_path: Path, tool_env: dict[str, str]) -> None:
    assert "DaemonSet" not in {d["kind"] for d in render(tmp_path, tool_env)}


def test_prometheus_reaches_the_exporters_and_the_api_server_and_nothing_else(rendered: list[dict]) -> None:
    from tests.unit.infra.test_cluster_program import TWO_POOLS, build

    policies = [
        {"metadata": p.inputs["metadata"], "spec": p.inputs["spec"]}
        for p in build(TWO_POOLS).of_type("kubernetes:networking.k8s.io/v1:NetworkPolicy")
    ] + list(named(rendered, "NetworkPolicy").values())
    assert connects(policies, PROMETHEUS, EXPORTER, 9400)
    assert connects(policies, PROMETHEUS, OUTSIDE, 443)
    assert not connects(policies, PROMETHEUS, EXPORTER, 22)
    assert not connects(policies, PROMETHEUS, Pod("team", {"component": "predictor"}), 8080)
    assert not connects(policies, Pod("team", {}), PROMETHEUS, 9090)


def test_the_configuration_discovers_the_exporters_and_carries_the_gpu_rules(rendered: list[dict]) -> None:
    config = named(rendered, "ConfigMap")["mlenv-prometheus"]["data"]
    prometheus = yaml.safe_load(config["prometheus.yml"])
    assert [job["job_name"] for job in prometheus["scrape_configs"]] == ["prometheus", "gpu"]
    (sd,) = prometheus["scrape_configs"][1]["kubernetes_sd_configs"]
    assert sd["namespaces"] == {"names": ["kube-system"]}
    rules = yaml.safe_load(config["mlenv.rules.yml"])["groups"][0]["rules"]
    assert [rule["alert"] for rule in rules] == ["TargetDown", "GpuIdle", "GpuMemoryFull", "GpuTooHot", "GpuXidErrors"]
    assert "< 5" in rules[1]["expr"] and "> 85" in rules[3]["expr"]
    # Prometheus discovers pods in the exporters' namespace only, and reads nothing else there.
    (role,) = named(rendered, "Role").values()
    assert role["metadata"]["namespace"] == "kube-system"
    assert role["rules"] == [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}]
