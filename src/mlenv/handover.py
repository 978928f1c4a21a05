"""What the cloud profile's layers hand each other (docs/architecture.md).

cluster program → kubeconfig (0600) + pools → site.yml on the operator's inventory with the
Kubernetes play → outputs.json + secret files → GitLab program. Each step's inputs are built by
a plain function here, so the hand-over is tested without a cloud; the runs themselves are the
cloud profile's (profiles/cloud.py), through the Automation API and ansible-runner.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import yaml

from mlenv.config import CI_LABEL_STUDIO_USER, CI_MLFLOW_USER, MlenvConfig
from mlenv.errors import UserError
from mlenv.files import write_private
from mlenv.outputs import Account, Outputs, read_secret
from mlenv.runners.pulumi import StackValue

CLUSTER = "cluster"
S3_KEYS = ("access_key", "secret_key")
GITLAB = "gitlab"
KUBECONFIG_FILE = "kubeconfig"
CLUSTER_OUTPUTS = "cluster.json"
# Where, under the secrets folder, the runners' tokens are kept (paths, not secrets).
GITLAB_TRIGGER_TOKEN = "gitlab/trigger_token"  # noqa: S105
ARGO_SUBMITTER_TOKEN = "argo/loop_token"  # noqa: S105
GITLAB_OUTPUTS = "gitlab.json"


def cluster_stack_config(config: MlenvConfig) -> dict[str, StackValue]:
    assert config.cloud is not None
    return {
        "environment": StackValue(config.environment),
        "cluster": StackValue(config.cloud.cluster.model_dump_json()),
    }


def keep_cluster_outputs(state: Path, outputs: dict[str, Any]) -> Path:
    """The kubeconfig into a 0600 file among the secrets; the rest (no secrets) beside outputs.json."""
    kubeconfig = write_private(state / "secrets" / KUBECONFIG_FILE, outputs["kubeconfig"])
    public = {key: value for key, value in outputs.items() if key != "kubeconfig"}
    write_private(state / CLUSTER_OUTPUTS, json.dumps(public, indent=2) + "\n")
    return kubeconfig


def kubernetes_vars(config: MlenvConfig, state: Path, cluster_outputs: dict[str, Any]) -> dict[str, Any]:
    """Facts of the cluster the program made; mlenv owns them (the settings layer)."""
    assert config.cloud is not None
    kubeconfig = str(state / "secrets" / KUBECONFIG_FILE)
    gpus = {pool.name: pool.accelerator_count for pool in config.cloud.cluster.gpu_pools}
    pools = [pool["name"] for pool in cluster_outputs["gpu_pools"]]
    found: dict[str, Any] = {
        "mlenv_kubernetes": True,
        "argo_workflows_kubeconfig": kubeconfig,
        "kserve_kubeconfig": kubeconfig,
        "argo_workflows_gpu_pools": [{"name": name, "gpus": gpus.get(name, 1)} for name in pools],
        "kserve_gpu_pools": [{"name": name} for name in pools],
        "cluster_metrics_kubeconfig": kubeconfig,
        # GKE runs its own GPU driver stack (and metrics); on EKS the cluster program runs NVIDIA's
        # device plugin, and the pools get its DCGM exporter beside it.
        "cluster_metrics_gpu_pools": [{"name": name} for name in pools if config.cloud.cluster.provider == "eks"],
        # The loop's models are served at their production version, followed as the alias moves.
        "kserve_models": [{"name": name, "alias": "production"} for name in config.served_models],
    }
    if config.loop_runner == "argo":
        # The trigger service submits Workflows itself, as the account the argo_workflows role makes.
        cluster = api_server(state / "secrets" / KUBECONFIG_FILE)
        found.update(
            argo_workflows_submitter_token_file=str(state / "secrets" / ARGO_SUBMITTER_TOKEN),
            ml_loop_argo_api_url=cluster["server"],
            ml_loop_argo_ca=cluster["ca"],
            ml_loop_argo_namespace=config.environment,
            ml_loop_argo_template="train-register-deploy" if pools else "train-register-deploy-cpu",
        )
    return found


def api_server(kubeconfig: Path) -> dict[str, str]:
    """The current context's API server URL and its CA (PEM; empty when a public CA signed it)."""
    try:
        found = yaml.safe_load(kubeconfig.read_text())
        contexts = {item["name"]: item["context"] for item in found.get("contexts", [])}
        clusters = {item["name"]: item["cluster"] for item in found["clusters"]}
        name = contexts[found["current-context"]]["cluster"] if found.get("current-context") else next(iter(clusters))
        cluster = clusters[name]
        ca = base64.b64decode(cluster.get("certificate-authority-data", "")).decode()
        return {"server": str(cluster["server"]), "ca": ca}
    except (OSError, yaml.YAMLError, KeyError, TypeError, StopIteration, ValueError) as err:
        raise UserError(
            f"the cluster's kubeconfig {kubeconfig} names no API server ({err}): run `mlenv up` again"
        ) from None


def platform_defaults(config: MlenvConfig, state: Path) -> dict[str, Any]:
    """Where pods reach the platform: through its TLS proxy by the public names. Defaults only
    (an inventory file's `all` vars): the operator's group_vars may point elsewhere."""
    found: dict[str, Any] = {
        "argo_workflows_s3_endpoint": f"s3.{config.tls.domain}:443",
        "kserve_s3_endpoint": f"s3.{config.tls.domain}:443",
        "argo_workflows_mlflow_tracking_uri": f"https://mlflow.{config.tls.domain}",
        "kserve_mlflow_tracking_uri": f"https://mlflow.{config.tls.domain}",
    }
    if config.loop.projects:
        # What the inference gateway answers goes to the trigger service: live accuracy from human labels.
        found["kserve_gateway_prediction_log_url"] = f"https://loop.{config.tls.domain}/api/predictions"
    if config.tls.certificate is None:
        # mlenv's own CA signed the proxy's certificate: the pods must trust it too.
        ca = str(state / "secrets" / "ca" / "ca.crt")
        found.update(argo_workflows_s3_ca_file=ca, kserve_s3_ca_file=ca)
    gitlab = config.cloud.gitlab if config.cloud is not None else None
    if config.loop_runner == "gitlab" and gitlab is not None:
        group = "/".join(part for part in (gitlab.parent_group, gitlab.group_path) if part)
        training = next(project for project in gitlab.projects if project.rsplit("/", 1)[-1] == gitlab.training_project)
        # The token exists once the GitLab layer ran (after the services): until then the service
        # records its runs as failed with what to do, and `mlenv up` converges again once it has it.
        found.update(
            ml_loop_gitlab_url=gitlab.url,
            ml_loop_gitlab_project=f"{group}/{training}",
            ml_loop_gitlab_trigger_token=read_when_made(state / "secrets" / GITLAB_TRIGGER_TOKEN),
        )
    if config.loop_runner == "argo":
        # Made on the cluster after the service's converge: `mlenv up` converges again to hand it over.
        found["ml_loop_argo_token"] = read_when_made(state / "secrets" / ARGO_SUBMITTER_TOKEN)
    return found


def read_when_made(path: Path) -> str:
    """The file's text as Ansible reads it when the role runs, empty while it does not exist (never copied here)."""
    return "{{ lookup('ansible.builtin.file', '" + str(path) + "', errors='ignore') | default('', true) }}"


def loop_token(config: MlenvConfig, state: Path) -> str | None:
    """The token the trigger service's runner needs from a later layer (GitLab's, the cluster's), if any."""
    relative = {"gitlab": GITLAB_TRIGGER_TOKEN, "argo": ARGO_SUBMITTER_TOKEN}.get(config.loop_runner)
    if not config.loop.projects or relative is None:
        return None
    path = state / "secrets" / relative
    return path.read_text() if path.is_file() else ""


def gitlab_stack_config(config: MlenvConfig, outputs: Outputs, state: Path) -> dict[str, StackValue]:
    """The GitLab program's config: the team space, the platform's public settings (outputs.json)
    and the secrets it turns into masked variables, read from their 0600 files."""
    assert config.cloud is not None and config.cloud.gitlab is not None
    # CI gets an MLflow user of its own and the workflows' object-store identity, not the administrator's.
    mlflow = Account(username=CI_MLFLOW_USER, secrets={"password": f"mlflow/users/{CI_MLFLOW_USER}"})
    ci_keys = Account(
        username="argo", secrets={kind: f"object_store/argo.{kind}" for kind in ("access_key", "secret_key")}
    )

    def secret(account: Account, kind: str) -> StackValue:
        return StackValue(read_secret(state, account, kind), secret=True)

    platform = {
        "tracking_uri": outputs.url("mlflow"),
        "s3_endpoint": outputs.url("object_store"),
        "dataset_bucket": "datasets",
        "mlflow_username": mlflow.username,
    }
    found = {
        "gitlab": StackValue(config.cloud.gitlab.model_dump_json()),
        "mlflowPassword": secret(mlflow, "password"),
        "awsAccessKeyId": secret(ci_keys, "access_key"),
        "awsSecretAccessKey": secret(ci_keys, "secret_key"),
    }
    labels = outputs.services.get("label_studio")
    if labels is not None and labels.account is not None:
        platform["label_studio_url"] = labels.url
        # CI's own account and token, to revoke apart from the administrator's.
        ci_labels = Account(
            username=CI_LABEL_STUDIO_USER, secrets={"api_token": f"label_studio/users/{CI_LABEL_STUDIO_USER}.api_token"}
        )
        found["labelStudioApiKey"] = secret(ci_labels, "api_token")
    found["platform"] = StackValue(json.dumps(platform))
    kubeconfig = state / "secrets" / KUBECONFIG_FILE
    if kubeconfig.is_file():
        found["kubeconfig"] = StackValue(kubeconfig.read_text(), secret=True)
    return found


def keep_gitlab_outputs(state: Path, outputs: dict[str, Any]) -> dict[str, Any]:
    """Tokens and runner configs into 0600 files under secrets/gitlab; the rest beside outputs.json."""
    secrets = state / "secrets" / "gitlab"
    write_private(secrets / "trigger_token", str(outputs["trigger_token"]))
    write_private(secrets / "deploy_token", str(outputs["deploy_token"]))
    for runner, toml in dict(outputs.get("runner_configs") or {}).items():
        write_private(secrets / f"runner-{runner}.toml", str(toml))
    public = {key: outputs[key] for key in ("group_id", "group_path", "projects") if key in outputs}
    write_private(state / GITLAB_OUTPUTS, json.dumps(public, indent=2) + "\n")
    return public
