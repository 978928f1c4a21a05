"""The cloud profile's layers and what passes between them (DESIGN.md, "The flow").

cluster program → kubeconfig (0600) + pools → site.yml on the operator's inventory with the
Kubernetes play → outputs.json + secret files → GitLab program. Each step's inputs are built by
a plain function here, so the hand-over is tested without a cloud; the runs themselves go
through the Automation API (runners/pulumi.py) and ansible-runner (runners/ansible.py).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from mlenv import outputs as platform_outputs
from mlenv.config import MlenvConfig
from mlenv.files import write_private
from mlenv.outputs import Account, Outputs, read_secret
from mlenv.runners.pulumi import ProgramRun, PulumiRunError, PulumiWorkspace, StackProgress, StackValue

if TYPE_CHECKING:
    from mlenv.app import Application
    from mlenv.runners.ansible import PlaybookResult

T = TypeVar("T")

CLUSTER = "cluster"
S3_KEYS = ("access_key", "secret_key")
GITLAB = "gitlab"
KUBECONFIG_FILE = "kubeconfig"
CLUSTER_OUTPUTS = "cluster.json"
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
    return {
        "mlenv_kubernetes": True,
        "argo_workflows_kubeconfig": kubeconfig,
        "kserve_kubeconfig": kubeconfig,
        "argo_workflows_gpu_pools": [{"name": name, "gpus": gpus.get(name, 1)} for name in pools],
        "kserve_gpu_pools": [{"name": name} for name in pools],
    }


def platform_defaults(config: MlenvConfig, state: Path) -> dict[str, Any]:
    """Where pods reach the platform: through its TLS proxy by the public names. Defaults only
    (an inventory file's `all` vars): the operator's group_vars may point elsewhere."""
    found: dict[str, Any] = {
        "argo_workflows_s3_endpoint": f"s3.{config.tls.domain}:443",
        "kserve_s3_endpoint": f"s3.{config.tls.domain}:443",
        "argo_workflows_mlflow_tracking_uri": f"https://mlflow.{config.tls.domain}",
    }
    if config.tls.certificate is None:
        # mlenv's own CA signed the proxy's certificate: the pods must trust it too.
        ca = str(state / "secrets" / "ca" / "ca.crt")
        found.update(argo_workflows_s3_ca_file=ca, kserve_s3_ca_file=ca)
    return found


def gitlab_stack_config(config: MlenvConfig, outputs: Outputs, state: Path) -> dict[str, StackValue]:
    """The GitLab program's config: the team space, the platform's public settings (outputs.json)
    and the secrets it turns into masked variables, read from their 0600 files."""
    assert config.cloud is not None and config.cloud.gitlab is not None
    mlflow = outputs.account("mlflow")
    # CI gets the workflows' object-store identity, not the administrator's.
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
        found["labelStudioApiKey"] = secret(labels.account, "api_token")
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


# The flow, as `mlenv up`, `plan` and `down --purge` run it.


def workspace(app: Application) -> PulumiWorkspace:
    from mlenv.paths import project_root

    settings = app.config.cloud.pulumi if app.config.cloud else None
    return PulumiWorkspace(
        project_root(),
        app.state,
        backend_url=settings.backend_url if settings else None,
        organization=settings.organization if settings else None,
    )


def echo_for(app: Application) -> Callable[[str], None] | None:
    """--verbose streams Pulumi's own output as it is (no markup: its lines hold brackets)."""
    return (lambda line: app.console.print(line, markup=False)) if app.verbose else None


def program(app: Application, name: str) -> ProgramRun:
    return ProgramRun(workspace(app), name, app.config.environment, app.state / "logs" / f"pulumi-{name}.log")


def run_layer(app: Application, title: str, name: str, action: Callable[[ProgramRun, Callable[[str], None]], T]) -> T:
    """One program's step as one progress line (with its log), a spinner naming the resource in flight."""
    started, run = time.monotonic(), program(app, name)
    with app.status(f"{title} …") as spinner:

        def on_resource(text: str) -> None:
            if spinner is not None:
                spinner.update(f"{title}: {text}")  # type: ignore[attr-defined]

        try:
            result = action(run, on_resource)
        except PulumiRunError as err:
            app.info(f"[red]✘[/red] {title:<40} {time.monotonic() - started:6.1f}s")
            app.abort(str(err))
    progress = result[1] if isinstance(result, tuple) else result
    changed = progress.changed if isinstance(progress, StackProgress) else 0
    app.info(f"[green]✔[/green] {title:<40} {time.monotonic() - started:6.1f}s  changed={changed}  log: {run.log}")
    return result


def up(app: Application) -> PlaybookResult:
    """cluster → Ansible (services + Kubernetes platform) → GitLab; every output kept in the state dir."""
    from mlenv.orchestrate import converge, write_inventory

    config = app.config
    assert config.cloud is not None
    echo = echo_for(app)
    cluster_outputs, _ = run_layer(
        app,
        f"GPU cluster ({config.cloud.cluster.provider}, pulumi/cluster)",
        CLUSTER,
        lambda run, on: run.up(cluster_stack_config(config), on, echo=echo),
    )
    keep_cluster_outputs(app.state, cluster_outputs)
    defaults = {"all": {"vars": platform_defaults(config, app.state)}}
    # Defaults first: the operator's inventory, after them, may point elsewhere.
    inventory = [write_inventory(app.state / "cloud-defaults.yml", defaults), config.cloud.inventory]
    facts = kubernetes_vars(config, app.state, cluster_outputs)
    source = "cloud.cluster (the cluster program's outputs)"
    result = converge(app, inventory, extra_settings={name: (value, source) for name, value in facts.items()})
    if not result.ok:
        app.abort(f"the converge failed ({result.failed} failed tasks); full log: {result.log}")
    if config.cloud.gitlab is not None:
        stack_config = gitlab_stack_config(config, platform_outputs.read(app.state), app.state)
        gitlab_outputs, _ = run_layer(
            app,
            f"GitLab space ({config.cloud.gitlab.group_path}, pulumi/gitlab)",
            GITLAB,
            lambda run, on: run.up(stack_config, on, echo=echo),
        )
        keep_gitlab_outputs(app.state, gitlab_outputs)
    return result


def preview(app: Application) -> None:
    """What `up` would change in the cloud: each program's preview whose inputs exist yet."""
    config = app.config
    assert config.cloud is not None
    summary = run_layer(
        app,
        "GPU cluster: preview",
        CLUSTER,
        lambda run, on: run.preview(cluster_stack_config(config), on, echo=echo_for(app)),
    )
    app.info(f"pulumi/cluster would: {describe_changes(summary)}")
    if config.cloud.gitlab is None:
        return
    if not (app.state / platform_outputs.OUTPUTS_FILE).is_file():
        app.info("pulumi/gitlab: previewed after the first `mlenv up` (it needs the services' outputs)")
        return
    stack_config = gitlab_stack_config(config, platform_outputs.read(app.state), app.state)
    summary = run_layer(
        app, "GitLab space: preview", GITLAB, lambda run, on: run.preview(stack_config, on, echo=echo_for(app))
    )
    app.info(f"pulumi/gitlab would: {describe_changes(summary)}")


def destroy(app: Application) -> None:
    """GitLab space first (it holds the cluster's kubeconfig), then the cluster."""
    config = app.config
    assert config.cloud is not None
    if config.cloud.gitlab is not None:
        run_layer(app, "GitLab space: destroy", GITLAB, lambda run, on: run.destroy(on, echo=echo_for(app)))
    run_layer(app, "GPU cluster: destroy", CLUSTER, lambda run, on: run.destroy(on, echo=echo_for(app)))
    (app.state / "secrets" / KUBECONFIG_FILE).unlink(missing_ok=True)


def describe_changes(summary: dict[str, int]) -> str:
    changes = {op: count for op, count in summary.items() if op not in {"same", "read"} and count}
    return ", ".join(f"{op} {count}" for op, count in sorted(changes.items())) or "nothing to change"
