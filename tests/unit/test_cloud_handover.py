"""The cloud profile's hand-over between layers (docs/architecture.md), without a cloud.

What mlenv passes to each Pulumi program is fed to the real program under Pulumi's mocks; what the
programs return is kept in the state dir with the modes the secrets need; the flow's order and
what each layer gets from the one before are checked with the runs replaced by recorders.
"""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlenv import handover as cloud
from mlenv.config import MlenvConfig
from mlenv.errors import UserError
from mlenv.files import write_private
from mlenv.outputs import Outputs
from mlenv.outputs import read as read_outputs
from mlenv.profiles import Run
from mlenv.profiles import cloud as cloud_profile
from mlenv.runners.pulumi import PulumiWorkspace, StackProgress, StackValue
from tests.conftest import PROJECT_ROOT, playbook_filters
from tests.unit.infra.mocks import run_program

service_endpoints = playbook_filters("mlenv_outputs").service_endpoints

POOLS = [
    {"name": "t4", "machine_type": "n1-standard-8", "accelerator": "nvidia-tesla-t4", "max_nodes": 2},
    {"name": "l4", "machine_type": "g2-standard-24", "accelerator": "nvidia-l4", "accelerator_count": 2,
     "max_nodes": 1},
]  # fmt: skip
SECRET_FILES = {
    "mlflow/admin_password": "pw-mlflow-admin",
    "mlflow/users/mlenv-ci": "pw-mlflow",
    "object_store/argo.access_key": "ARGOKEY",
    "object_store/argo.secret_key": "argo-secret",
    "label_studio/api_token": "ls-admin-token",
    "label_studio/users/ci@mlenv.local.api_token": "ls-token",
}


LOOP = {"projects": [{"title": "Support tickets", "dataset": "tickets", "model": "tickets"}]}


def cloud_config(tmp_path: Path, loop: dict | None = None, **tls: Any) -> MlenvConfig:
    return MlenvConfig.model_validate(
        {
            "environment": "team-a",
            "profile": "cloud",
            "tls": {"domain": "ml.example.com", **tls},
            **({"loop": loop} if loop else {}),
            "cloud": {
                "inventory": str(tmp_path / "inventory"),
                "cluster": {"provider": "gke", "region": "europe-west4", "project": "p", "gpu_pools": POOLS},
                "gitlab": {"group_path": "team-a", "gpu_pool": "t4"},
            },
        }
    )


def outputs_json(state: Path, *, label_studio: bool = True) -> Outputs:
    """outputs.json as site.yml's Outputs play writes it (through its filter), with the secret files it names."""
    for relative, value in SECRET_FILES.items():
        (state / "secrets" / relative).parent.mkdir(parents=True, exist_ok=True)
        (state / "secrets" / relative).write_text(value + "\n")
    urls = {"mlflow": "https://mlflow.ml.example.com", "object_store": "https://s3.ml.example.com"}
    accounts: dict[str, Any] = {"mlflow": {"username": "admin", "secrets": {"password": "mlflow/admin_password"}}}
    if label_studio:
        urls["label_studio"] = "https://labels.ml.example.com"
        accounts["label_studio"] = {
            "username": "admin@mlenv.local",
            "secrets": {"password": "label_studio/admin_password", "api_token": "label_studio/api_token"},
        }
    found = {
        "environment": "team-a",
        "services": service_endpoints(urls, accounts),
        "object_store_endpoint": "http://10.0.1.11:8333",
        "region": "us-east-1",
        "buckets": ["mlflow", "datasets"],
        "versioned_buckets": ["datasets"],
    }
    (state / "outputs.json").write_text(json.dumps(found))
    return read_outputs(state)


def plain(config: dict[str, StackValue]) -> dict[str, str]:
    return {key: value.value for key, value in config.items()}


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_cluster_program_builds_what_mlenv_yaml_asks_for(tmp_path: Path) -> None:
    config = cloud_config(tmp_path)
    mocks = run_program("cluster", "mlenv-cluster", plain(cloud.cluster_stack_config(config)))
    pools = {pool.name: pool.inputs for pool in mocks.of_type("gcp:container/nodePool:NodePool")}
    assert set(pools) == {"team-a-gpu-t4", "team-a-gpu-l4", "team-a-system"}
    l4 = pools["team-a-gpu-l4"]["nodeConfig"]
    assert l4["labels"]["mlenv.io/pool"] == "l4"
    assert l4["guestAccelerators"][0]["count"] == 2
    assert {"key": "nvidia.com/gpu", "value": "present", "effect": "NO_SCHEDULE"} in l4["taints"]


def test_cluster_outputs_are_kept_with_the_kubeconfig_private(tmp_path: Path) -> None:
    outputs = {"kubeconfig": "apiVersion: v1\nkind: Config\n", "cluster_name": "team-a", "region": "europe-west4",
               "gpu_pools": [{"name": "t4"}, {"name": "l4"}]}  # fmt: skip
    kubeconfig = cloud.keep_cluster_outputs(tmp_path, outputs)
    assert kubeconfig.read_text() == outputs["kubeconfig"] and mode(kubeconfig) == 0o600
    kept = json.loads((tmp_path / cloud.CLUSTER_OUTPUTS).read_text())
    assert "kubeconfig" not in kept and kept["cluster_name"] == "team-a"
    assert mode(tmp_path / "secrets") == 0o700


def test_the_kubernetes_play_gets_the_cluster_its_pools_and_the_models_to_follow(tmp_path: Path) -> None:
    config = cloud_config(tmp_path, LOOP)
    found = cloud.kubernetes_vars(config, tmp_path, {"gpu_pools": [{"name": "t4"}, {"name": "l4"}]})
    assert found["kserve_models"] == [{"name": name, "alias": "production"} for name in config.served_models]
    assert found["kserve_models"] and config.served_models == sorted({p["model"] for p in LOOP["projects"]})
    assert found["mlenv_kubernetes"] is True
    assert found["argo_workflows_kubeconfig"] == found["kserve_kubeconfig"] == str(tmp_path / "secrets/kubeconfig")
    assert found["argo_workflows_gpu_pools"] == [{"name": "t4", "gpus": 1}, {"name": "l4", "gpus": 2}]
    assert found["kserve_gpu_pools"] == [{"name": "t4"}, {"name": "l4"}]


def test_every_consumer_off_the_hosts_logs_in_to_mlflow_as_a_user_the_services_make(tmp_path: Path) -> None:
    """The users the mlflow role creates are those the CI hand-over, the workflows and the follower
    log in with: none of them is the administrator."""
    made = cloud_config(tmp_path).ansible_vars()["mlflow_client_users"]
    roles = PROJECT_ROOT / "ansible/roles"
    workflows = yaml.safe_load((roles / "argo_workflows/defaults/main.yml").read_text())
    follower = yaml.safe_load((roles / "kserve/defaults/main.yml").read_text())
    consumers = [workflows["argo_workflows_mlflow_username"], follower["kserve_mlflow_username"], "mlenv-ci"]
    assert sorted(made) == sorted(consumers) and "admin" not in made
    # Without a cluster: CI's alone; Label Studio has CI's account while it runs.
    assert MlenvConfig().ansible_vars()["mlflow_client_users"] == ["mlenv-ci"]
    assert MlenvConfig().ansible_vars()["label_studio_client_users"] == ["ci@mlenv.local"]
    without_labels = MlenvConfig.model_validate({"services": {"label_studio": False}})
    assert without_labels.ansible_vars()["label_studio_client_users"] == []


def test_the_trigger_service_starts_the_training_projects_pipeline_with_the_token_file(tmp_path: Path) -> None:
    config = cloud_config(tmp_path, LOOP)
    assert config.loop_runner == "gitlab" and config.ansible_vars()["ml_loop_runner"] == "gitlab"
    generated = cloud.platform_defaults(config, tmp_path)
    assert generated["ml_loop_gitlab_url"] == "https://gitlab.com"
    assert generated["ml_loop_gitlab_project"] == "team-a/training"
    # Read on the controller when the role runs (empty before the GitLab layer made it), never copied here.
    token = generated["ml_loop_gitlab_trigger_token"]
    assert str(tmp_path / "secrets/gitlab/trigger_token") in token and token.startswith("{{ lookup(")
    systemd = cloud.platform_defaults(cloud_config(tmp_path, {**LOOP, "runner": "systemd"}), tmp_path)
    assert "ml_loop_gitlab_project" not in systemd


def test_pods_reach_the_platform_by_its_public_names_trusting_its_ca(tmp_path: Path) -> None:
    generated = cloud.platform_defaults(cloud_config(tmp_path), tmp_path)
    assert generated["argo_workflows_s3_endpoint"] == generated["kserve_s3_endpoint"] == "s3.ml.example.com:443"
    assert generated["argo_workflows_mlflow_tracking_uri"] == generated["kserve_mlflow_tracking_uri"]
    assert generated["kserve_mlflow_tracking_uri"] == "https://mlflow.ml.example.com"
    assert generated["argo_workflows_s3_ca_file"] == str(tmp_path / "secrets/ca/ca.crt")
    # With projects in the loop, what the gateway answers goes to the trigger service for the live accuracy.
    assert "kserve_gateway_prediction_log_url" not in generated
    looped = cloud.platform_defaults(cloud_config(tmp_path, LOOP), tmp_path)
    assert looped["kserve_gateway_prediction_log_url"] == "https://loop.ml.example.com/api/predictions"
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    cert.write_text("x")
    key.write_text("x")
    provided = cloud.platform_defaults(cloud_config(tmp_path, certificate=str(cert), key=str(key)), tmp_path)
    assert "argo_workflows_s3_ca_file" not in provided and "kserve_s3_ca_file" not in provided


@pytest.mark.parametrize("label_studio", [True, False])
def test_the_gitlab_program_gets_the_services_and_their_secrets(tmp_path: Path, label_studio: bool) -> None:
    config = cloud_config(tmp_path)
    outputs = outputs_json(tmp_path, label_studio=label_studio)
    write_private(tmp_path / "secrets/kubeconfig", "apiVersion: v1\nkind: Config\n")
    stack_config = cloud.gitlab_stack_config(config, outputs, tmp_path)
    secret = {key for key, value in stack_config.items() if value.secret}
    assert secret == {"mlflowPassword", "awsAccessKeyId", "awsSecretAccessKey", "kubeconfig"} | (
        {"labelStudioApiKey"} if label_studio else set()
    )
    assert stack_config["awsAccessKeyId"].value == "ARGOKEY"  # the file's content, without its newline
    mocks = run_program("gitlab", "mlenv-gitlab", plain(stack_config))
    variables = {
        (v.inputs["key"], v.inputs["environmentScope"]): v.inputs
        for v in mocks.of_type("gitlab:index/groupVariable:GroupVariable")
    }
    assert variables[("MLFLOW_TRACKING_URI", "*")]["value"] == "https://mlflow.ml.example.com"
    assert variables[("MLFLOW_S3_ENDPOINT_URL", "*")]["value"] == "https://s3.ml.example.com"
    # CI's own MLflow user, never the administrator.
    assert variables[("MLFLOW_TRACKING_USERNAME", "*")]["value"] == "mlenv-ci"
    assert variables[("MLFLOW_TRACKING_PASSWORD", "*")]["value"]["value"] == "pw-mlflow"  # a Pulumi secret
    assert variables[("KUBECONFIG", "production")]["variableType"] == "file"
    assert (("LABEL_STUDIO_API_KEY", "*") in variables) is label_studio
    if label_studio:  # CI's own token, not the administrator's
        assert variables[("LABEL_STUDIO_API_KEY", "*")]["value"]["value"] == "ls-token"
    # No StackReference is read: the kubeconfig came as secret config.
    assert mocks.of_type("pulumi:pulumi:StackReference") == []


def test_gitlab_outputs_keep_tokens_and_runner_configs_private(tmp_path: Path) -> None:
    public = cloud.keep_gitlab_outputs(
        tmp_path,
        {"group_id": 7, "group_path": "team-a", "projects": {"training": "team-a/training"},
         "trigger_token": "glptt-x", "deploy_token": "gldt-y",
         "runner_configs": {"cpu": "[[runners]]", "gpu": "[[r]]"}},
    )  # fmt: skip
    assert public == {"group_id": 7, "group_path": "team-a", "projects": {"training": "team-a/training"}}
    kept = sorted(path.name for path in (tmp_path / "secrets/gitlab").iterdir())
    assert kept == ["deploy_token", "runner-cpu.toml", "runner-gpu.toml", "trigger_token"]
    assert all(mode(path) == 0o600 for path in (tmp_path / "secrets/gitlab").iterdir())
    assert "glptt" not in (tmp_path / cloud.GITLAB_OUTPUTS).read_text()


def test_stacks_keep_state_in_the_state_dir_with_a_generated_passphrase(tmp_path: Path, monkeypatch) -> None:
    for name in ("PULUMI_BACKEND_URL", "PULUMI_CONFIG_PASSPHRASE", "PULUMI_CONFIG_PASSPHRASE_FILE"):
        monkeypatch.delenv(name, raising=False)
    workspace = PulumiWorkspace(Path("/project"), tmp_path)
    env = workspace.env_vars()
    assert env["PULUMI_BACKEND_URL"] == f"file://{tmp_path / 'pulumi'}"
    passphrase = Path(env["PULUMI_CONFIG_PASSPHRASE_FILE"])
    assert mode(passphrase) == 0o600 and len(passphrase.read_text()) >= 40
    # The same passphrase on every run: a new one could not decrypt the stacks' secrets.
    assert workspace.env_vars()["PULUMI_CONFIG_PASSPHRASE_FILE"] == str(passphrase)
    assert passphrase.read_text() == Path(workspace.env_vars()["PULUMI_CONFIG_PASSPHRASE_FILE"]).read_text()
    cloud_backend = PulumiWorkspace(Path("/p"), tmp_path, backend_url="https://api.pulumi.com", organization="acme")
    assert "PULUMI_CONFIG_PASSPHRASE_FILE" not in cloud_backend.env_vars()
    assert cloud_backend.stack_name("team-a") == "acme/team-a"
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", "the operator's")
    assert "PULUMI_CONFIG_PASSPHRASE_FILE" not in PulumiWorkspace(Path("/p"), tmp_path, "s3://b/p").env_vars()


def test_a_shared_backend_needs_a_given_passphrase_or_a_kms_key(tmp_path: Path, monkeypatch) -> None:
    """A passphrase generated on one operator's machine would leave every other one unable to decrypt."""
    for name in ("PULUMI_BACKEND_URL", "PULUMI_CONFIG_PASSPHRASE", "PULUMI_CONFIG_PASSPHRASE_FILE"):
        monkeypatch.delenv(name, raising=False)
    shared = PulumiWorkspace(Path("/p"), tmp_path, backend_url="s3://team-state/pulumi")
    with pytest.raises(UserError, match=r"the Pulumi backend s3://team-state/pulumi is shared: give every operator"):
        shared.env_vars()
    assert not (tmp_path / "secrets").exists(), "a passphrase was generated anyway"
    kms = PulumiWorkspace(
        Path("/p"), tmp_path, backend_url="s3://team-state/pulumi", secrets_provider="awskms://alias/x"
    )
    assert "PULUMI_CONFIG_PASSPHRASE_FILE" not in kms.env_vars()
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE_FILE", str(tmp_path / "given"))
    assert shared.env_vars()["PULUMI_BACKEND_URL"] == "s3://team-state/pulumi"
    with pytest.raises(ValueError, match="secrets_provider"):
        MlenvConfig.model_validate({"profile": "cloud", "cloud": {
            "inventory": "/x", "cluster": {"provider": "gke", "region": "r", "project": "p", "gpu_pools": []},
            "pulumi": {"secrets_provider": "plaintext://x"}}})  # fmt: skip


def test_engine_events_become_counts_and_failures() -> None:
    from pulumi.automation import events

    def step(op: events.OpType, name: str) -> events.EngineEvent:
        metadata = events.StepEventMetadata(op=op, urn=f"urn:pulumi:s::p::gcp:container/nodePool:NodePool::{name}",
                                            type="gcp:container/nodePool:NodePool", provider="")  # fmt: skip
        return events.EngineEvent(sequence=1, timestamp=0, res_outputs_event=events.ResOutputsEvent(metadata))

    progress, seen = StackProgress(), []
    for event in (step(events.OpType.CREATE, "t4"), step(events.OpType.SAME, "system")):
        progress.handle(event, seen.append)
    policy = events.PolicyEvent(message="GPU pool t4 has no taint", color="never", policy_name="gpu-pools-tainted",
                                policy_pack_name="mlenv", policy_pack_version="1", policy_pack_version_tag="1",
                                enforcement_level="mandatory")  # fmt: skip
    progress.handle(events.EngineEvent(sequence=3, timestamp=0, policy_event=policy), seen.append)
    assert seen == ["create t4", "same system"]
    assert (progress.operations, progress.changed) == ({"create": 1, "same": 1}, 1)
    assert progress.failures == ["policy gpu-pools-tainted: GPU pool t4 has no taint"]


class RecordedProgram:
    """Stands in for one Automation API program run; records what the flow gives it."""

    def __init__(self, name: str, calls: list[tuple[str, str, dict[str, StackValue]]], outputs: dict) -> None:
        self.name, self.calls, self.outputs = name, calls, outputs
        self.log = Path(f"/state/logs/pulumi-{name}.log")

    def up(self, config: dict[str, StackValue], on_resource, echo=None) -> tuple[dict, StackProgress]:
        self.calls.append(("up", self.name, config))
        on_resource(f"create {self.name}")
        return self.outputs, StackProgress({"create": 3})

    def preview(self, config: dict[str, StackValue], on_resource, echo=None) -> dict[str, int]:
        self.calls.append(("preview", self.name, config))
        return {"create": 5, "same": 2}

    def destroy(self, on_resource, echo=None) -> StackProgress:
        self.calls.append(("destroy", self.name, {}))
        return StackProgress({"delete": 5})


def cloud_run(tmp_path: Path, loop: dict | None = None) -> Run:
    from mlenv.app import Application

    return Run(cloud_config(tmp_path, loop), tmp_path / "state", Application())


@pytest.fixture
def recorded(tmp_path: Path, monkeypatch):
    """The cloud profile on a cloud config whose program runs are recorded, not sent to a cloud."""
    calls: list[tuple[str, str, Any]] = []
    monkeypatch.setattr(cloud_profile, "program", lambda run, name: RecordedProgram(name, calls, {}))
    return cloud_profile.Cloud(cloud_run(tmp_path)), calls


def test_plan_previews_gitlab_only_once_the_services_exist(recorded, capsys) -> None:
    profile, calls = recorded
    profile.preview()
    assert [(kind, name) for kind, name, *_ in calls] == [("preview", cloud.CLUSTER)]
    printed = capsys.readouterr().out
    assert "pulumi/cluster would: create 5" in printed
    assert "pulumi/gitlab: previewed after the first `mlenv up`" in printed
    outputs_json(profile.run.state)
    profile.preview()
    assert [(kind, name) for kind, name, *_ in calls[1:]] == [("preview", cloud.CLUSTER), ("preview", cloud.GITLAB)]


def test_purge_destroys_gitlab_before_the_cluster_and_forgets_the_kubeconfig(recorded) -> None:
    profile, calls = recorded
    kubeconfig = write_private(profile.run.state / "secrets/kubeconfig", "apiVersion: v1\n")
    profile.destroy()
    assert [(kind, name) for kind, name, *_ in calls] == [("destroy", cloud.GITLAB), ("destroy", cloud.CLUSTER)]
    assert not kubeconfig.exists()


def record_up(monkeypatch, run: Run, cluster_outputs: dict[str, Any], kubernetes_play: Any) -> list:
    """`mlenv up` of the cloud profile with its programs and converges recorded, not run; the preflight (CLI,
    credentials) has tests of its own, here every check passes. `kubernetes_play(facts)` stands for what
    the converge's Kubernetes play does."""
    from mlenv.runners.ansible import PlaybookResult

    monkeypatch.setattr(cloud_profile.preflight, "run", lambda config, **kwargs: [])
    calls: list[tuple[str, str, Any]] = []
    gitlab_outputs = {"group_id": 1, "group_path": "team-a", "projects": {}, "trigger_token": "t", "deploy_token": "d"}
    programs = {cloud.CLUSTER: cluster_outputs, cloud.GITLAB: gitlab_outputs}
    monkeypatch.setattr(cloud_profile, "program", lambda run, name: RecordedProgram(name, calls, programs[name]))

    def converge(run, inventory, *, public_https_port, extra_settings=None, check=False, **day2) -> PlaybookResult:
        facts = {name: value for name, (value, _) in (extra_settings or {}).items()}
        calls.append((day2.get("playbook", "converge"), str(inventory[-1]), facts, day2.get("extravars")))
        kubernetes_play(facts)
        outputs_json(run.state)
        return PlaybookResult("successful", 0, 4, 0, run.state / "log", [])

    monkeypatch.setattr(cloud_profile, "converge", converge)
    return calls


def test_day2_playbooks_run_on_the_hosts_and_facts_up_converged(tmp_path, monkeypatch) -> None:
    run = cloud_run(tmp_path)
    profile = cloud_profile.Cloud(run)
    with pytest.raises(UserError, match="cluster was never brought up"):
        profile.operate("backup.yml", {"mlenv_backup_dir": "/b"})
    cluster_outputs = {"kubeconfig": "apiVersion: v1\n", "cluster_name": "team-a", "region": "europe-west4",
                       "gpu_pools": [{"name": "t4"}]}  # fmt: skip
    calls = record_up(monkeypatch, run, cluster_outputs, lambda facts: None)
    profile.up()
    profile.operate("backup.yml", {"mlenv_backup_dir": "/b"})
    converged = next(call for call in calls if call[0] == "converge")
    assert calls[-1] == ("backup.yml", converged[1], converged[2], {"mlenv_backup_dir": "/b"})


@pytest.mark.parametrize("loop", [None, LOOP], ids=["no loop", "loop projects"])
def test_up_runs_cluster_then_services_then_gitlab_passing_outputs_on(tmp_path, monkeypatch, capsys, loop) -> None:
    run = cloud_run(tmp_path, loop)
    state = run.state
    cluster_outputs = {"kubeconfig": "apiVersion: v1\n", "cluster_name": "team-a", "region": "europe-west4",
                       "gpu_pools": [{"name": "t4"}, {"name": "l4"}]}  # fmt: skip

    def kubernetes_play(facts: dict[str, Any]) -> None:
        # The kubeconfig is in place before the Kubernetes play needs it.
        assert Path(facts["kserve_kubeconfig"]).read_text() == "apiVersion: v1\n"

    calls = record_up(monkeypatch, run, cluster_outputs, kubernetes_play)
    result = cloud_profile.Cloud(run).up()
    assert result.changed == 4
    # With loop projects, the trigger service is converged again once the GitLab layer made its token.
    assert [(kind, name) for kind, name, *_ in calls] == [
        ("up", cloud.CLUSTER),
        ("converge", str(tmp_path / "inventory")),
        ("up", cloud.GITLAB),
    ] + ([("converge", str(tmp_path / "inventory"))] if loop else [])
    assert calls[1][2]["argo_workflows_gpu_pools"] == [{"name": "t4", "gpus": 1}, {"name": "l4", "gpus": 2}]
    assert calls[2][2]["mlflowPassword"] == StackValue("pw-mlflow", secret=True)
    assert (state / "secrets/gitlab/trigger_token").read_text() == "t"
    printed = capsys.readouterr().out
    assert "✔ GPU cluster (gke, pulumi/cluster)" in printed
    assert "changed=3  log: /state/logs/pulumi-cluster.log" in printed


KUBECONFIG = """apiVersion: v1
kind: Config
current-context: team-a
contexts: [{name: team-a, context: {cluster: gke-team-a, user: team-a}}]
clusters:
  - name: gke-team-a
    cluster: {server: "https://34.1.2.3", certificate-authority-data: "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCg=="}
users: [{name: team-a, user: {token: cluster-admin}}]
"""


def test_with_the_argo_runner_the_service_gets_the_clusters_api_its_ca_and_the_accounts_token(tmp_path) -> None:
    config = cloud_config(tmp_path, {**LOOP, "runner": "argo"})
    write_private(tmp_path / "secrets/kubeconfig", KUBECONFIG)
    found = cloud.kubernetes_vars(config, tmp_path, {"gpu_pools": []})
    assert found["ml_loop_argo_api_url"] == "https://34.1.2.3"
    assert found["ml_loop_argo_ca"] == "-----BEGIN CERTIFICATE-----\n"
    assert found["ml_loop_argo_namespace"] == "team-a"
    assert found["ml_loop_argo_template"] == "train-register-deploy-cpu"  # no GPU pool, no GPU template
    assert found["argo_workflows_submitter_token_file"] == str(tmp_path / "secrets/argo/loop_token")
    assert "cluster-admin" not in json.dumps(found), "the operator's own credentials stay in the kubeconfig"
    token = cloud.platform_defaults(config, tmp_path)["ml_loop_argo_token"]
    assert str(tmp_path / "secrets/argo/loop_token") in token and token.startswith("{{ lookup(")
    assert "ml_loop_argo_api_url" not in cloud.kubernetes_vars(
        cloud_config(tmp_path, LOOP), tmp_path, {"gpu_pools": []}
    )


def test_a_kubeconfig_without_an_api_server_is_a_clear_error(tmp_path) -> None:
    config = cloud_config(tmp_path, {**LOOP, "runner": "argo"})
    write_private(tmp_path / "secrets/kubeconfig", "apiVersion: v1\n")
    with pytest.raises(UserError, match=r"kubeconfig .* names no API server"):
        cloud.kubernetes_vars(config, tmp_path, {"gpu_pools": []})


def test_up_converges_again_once_the_cluster_made_the_argo_runners_token(tmp_path, monkeypatch) -> None:
    run = cloud_run(tmp_path, {**LOOP, "runner": "argo"})
    cluster_outputs = {"kubeconfig": KUBECONFIG, "cluster_name": "team-a", "region": "europe-west4", "gpu_pools": []}

    def kubernetes_play(facts: dict[str, Any]) -> None:
        # The argo_workflows role writes the account's token (the Kubernetes play, after the service's).
        write_private(Path(facts["argo_workflows_submitter_token_file"]), "sa-token")

    calls = record_up(monkeypatch, run, cluster_outputs, kubernetes_play)
    cloud_profile.Cloud(run).up()
    assert [kind for kind, *_ in calls] == ["up", "converge", "up", "converge"]
    calls.clear()
    cloud_profile.Cloud(run).up()  # the same token: one converge
    assert [kind for kind, *_ in calls] == ["up", "converge", "up"]


class LockedOnceStack:
    """A stack whose first update meets the lock a killed run left (what the engine raises then)."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def up(self, **kwargs: Any) -> Any:
        from pulumi.automation import errors
        from pulumi.automation._cmd import CommandResult

        self.calls.append("up")
        if self.calls.count("up") == 1:
            raise errors.ConcurrentUpdateError(CommandResult("", "error: the stack is currently locked", 255))
        return type("UpResult", (), {"outputs": {}})()

    def cancel(self) -> None:
        self.calls.append("cancel")


@pytest.mark.parametrize("own_backend", [True, False])
def test_a_lock_left_by_a_killed_run_is_released_only_on_mlenvs_own_backend(
    tmp_path: Path, monkeypatch, own_backend: bool
) -> None:
    from mlenv.runners.pulumi import ProgramRun, PulumiRunError

    monkeypatch.delenv("PULUMI_BACKEND_URL", raising=False)
    stack = LockedOnceStack()
    monkeypatch.setattr(ProgramRun, "_stack", lambda self, config: stack)
    backend = None if own_backend else "s3://team-bucket/pulumi"
    run = ProgramRun(PulumiWorkspace(Path("/p"), tmp_path, backend), "cluster", "team-a", tmp_path / "logs/p.log")
    if own_backend:
        assert run.up({}, lambda text: None) == ({}, StackProgress())
        assert stack.calls == ["up", "cancel", "up"]
        assert "releasing the lock an interrupted run left" in (tmp_path / "logs/p.log").read_text()
    else:
        with pytest.raises(PulumiRunError, match="locked by another update; if none is running, release it with"):
            run.up({}, lambda text: None)
        assert stack.calls == ["up"]


def test_the_operators_group_vars_win_over_mlenvs_platform_defaults(tmp_path: Path, tool_env) -> None:
    """Ansible's own precedence, as `mlenv up` (cloud) layers the inventories: the operator's group_vars over
    the defaults mlenv derives; the cluster's facts come from mlenv's settings layer, which nothing in the
    sample contradicts."""
    import shutil
    import subprocess

    from mlenv.profiles.base import write_inventory
    from tests.conftest import PROJECT_ROOT

    inventory = tmp_path / "inventory"
    shutil.copytree(PROJECT_ROOT / "inventories/sample", inventory)
    (inventory / "group_vars/all/endpoints.yml").write_text("kserve_s3_endpoint: s3.internal:9000\n")
    from mlenv.settings import owned_settings, write_layer

    config = cloud_config(tmp_path)
    defaults = cloud.platform_defaults(config, tmp_path)
    layered = write_inventory(tmp_path / "cloud-defaults.yml", {"all": {"vars": defaults}})
    facts = cloud.kubernetes_vars(config, tmp_path, {"gpu_pools": [{"name": "t4"}]})
    settings = owned_settings(config, tmp_path, public_https_port=443, extra={k: (v, "c") for k, v in facts.items()})
    layer = write_layer(tmp_path, settings)
    result = subprocess.run(
        ["ansible-inventory", "-i", str(layer), "-i", str(layered), "-i", str(inventory),
         "--host", "apps1.ml.example.internal"],
        env=tool_env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    host = json.loads(result.stdout)
    assert host["kserve_s3_endpoint"] == "s3.internal:9000"  # the operator's choice
    assert host["argo_workflows_s3_endpoint"] == "s3.ml.example.com:443"  # mlenv's default
    assert host["mlenv_kubernetes"] is True  # the settings layer's
    assert host["kserve_kubeconfig"] == str(tmp_path / "secrets/kubeconfig")


def test_a_missing_secret_file_stops_the_gitlab_layer_with_what_to_do(tmp_path: Path) -> None:
    from mlenv.errors import UserError

    outputs = outputs_json(tmp_path)
    (tmp_path / "secrets/object_store/argo.secret_key").unlink()
    with pytest.raises(UserError) as raised:
        cloud.gitlab_stack_config(cloud_config(tmp_path), outputs, tmp_path)
    assert str(raised.value) == (
        f"the secret file {tmp_path}/secrets/object_store/argo.secret_key is missing: restore it from a backup "
        "(the services still use it)"
    )
