"""The cloud profile: GPU cluster (pulumi/cluster) → services and Kubernetes platform (site.yml on
the operator's inventory) → GitLab space (pulumi/gitlab). What each layer hands the next is built
by mlenv.handover; the programs run through the Automation API (runners/pulumi.py)."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from mlenv import outputs as platform_outputs
from mlenv import preflight
from mlenv.errors import UserError
from mlenv.handover import (
    CLUSTER,
    CLUSTER_OUTPUTS,
    GITLAB,
    KUBECONFIG_FILE,
    cluster_stack_config,
    gitlab_stack_config,
    keep_cluster_outputs,
    keep_gitlab_outputs,
    kubernetes_vars,
    loop_token,
    platform_defaults,
)
from mlenv.profiles.base import Confirm, Profile, Run, converge, write_inventory
from mlenv.runners.ansible import PlaybookResult, forget_runs
from mlenv.runners.pulumi import ProgramRun, PulumiRunError, PulumiWorkspace, StackProgress
from mlenv.settings import Settings

T = TypeVar("T")
OnResource = Callable[[str], None]


def program(run: Run, name: str) -> ProgramRun:
    """One Pulumi program's stack for this environment (tests record these instead)."""
    from mlenv.paths import project_root

    settings = run.config.cloud.pulumi if run.config.cloud else None
    workspace = PulumiWorkspace(
        project_root(),
        run.state,
        backend_url=settings.backend_url if settings else None,
        organization=settings.organization if settings else None,
        secrets_provider=settings.secrets_provider if settings else None,
    )
    return ProgramRun(workspace, name, run.config.environment, run.state / "logs" / f"pulumi-{name}.log")


def describe_changes(summary: dict[str, int]) -> str:
    changes = {op: count for op, count in summary.items() if op not in {"same", "read"} and count}
    return ", ".join(f"{op} {count}" for op, count in sorted(changes.items())) or "nothing to change"


class Cloud(Profile):
    def __init__(self, run: Run) -> None:
        super().__init__(run)
        assert run.config.cloud is not None  # the config model requires it with profile cloud
        self.cloud = run.config.cloud

    def echo(self) -> Callable[[str], None] | None:
        """--verbose streams Pulumi's own output as it is."""
        return self.run.report.raw if self.run.report.verbose else None

    def layer(self, title: str, name: str, action: Callable[[ProgramRun, OnResource], T]) -> T:
        """One program's step as one progress line (with its log), a spinner naming the resource in flight."""
        report, started, stack = self.run.report, time.monotonic(), program(self.run, name)
        with report.status(f"{title} …") as spinner:

            def on_resource(text: str) -> None:
                if spinner is not None:
                    spinner.update(f"{title}: {text}")  # type: ignore[attr-defined]

            try:
                result = action(stack, on_resource)
            except PulumiRunError:
                report.info(f"[red]✘[/red] {title:<40} {time.monotonic() - started:6.1f}s")
                raise
        progress = result[1] if isinstance(result, tuple) else result
        changed = progress.changed if isinstance(progress, StackProgress) else 0
        report.info(
            f"[green]✔[/green] {title:<40} {time.monotonic() - started:6.1f}s  changed={changed}  log: {stack.log}"
        )
        return result

    def up(self) -> PlaybookResult:
        """cluster → Ansible (services + Kubernetes platform) → GitLab; every output kept in the state dir."""
        config, state = self.run.config, self.run.state
        self.check(preflight.run(config, host_exists=False, port_owned=False))
        self.run.secrets.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.run.report.info(f"target: the hosts of {self.cloud.inventory} and a {self.cloud.cluster.provider} cluster")
        cluster_outputs, _ = self.layer(
            f"GPU cluster ({self.cloud.cluster.provider}, pulumi/cluster)",
            CLUSTER,
            lambda stack, on: stack.up(cluster_stack_config(config), on, echo=self.echo()),
        )
        keep_cluster_outputs(state, cluster_outputs)
        inventory, owned = self.hosts(cluster_outputs)
        token_before = loop_token(config, state)
        result = converge(self.run, inventory, public_https_port=443, extra_settings=owned)
        if self.cloud.gitlab is not None:
            stack_config = gitlab_stack_config(config, platform_outputs.read(state), state)
            gitlab_outputs, _ = self.layer(
                f"GitLab space ({self.cloud.gitlab.group_path}, pulumi/gitlab)",
                GITLAB,
                lambda stack, on: stack.up(stack_config, on, echo=self.echo()),
            )
            keep_gitlab_outputs(state, gitlab_outputs)
        if loop_token(config, state) != token_before:
            # The trigger service was configured before the cluster or the GitLab layer made its token.
            self.run.report.info(f"the trigger service gets the new token of its runner ({config.loop_runner})")
            result = converge(self.run, inventory, public_https_port=443, extra_settings=owned)
        return result

    def hosts(self, cluster_outputs: dict[str, Any]) -> tuple[list[Path], Settings]:
        """The inventory of the services' hosts, and the cluster's facts mlenv owns."""
        config, state = self.run.config, self.run.state
        defaults = {"all": {"vars": platform_defaults(config, state)}}
        # Defaults first: the operator's inventory, after them, may point elsewhere.
        inventory = [write_inventory(state / "cloud-defaults.yml", defaults), self.cloud.inventory]
        facts = kubernetes_vars(config, state, cluster_outputs)
        source = "cloud.cluster (the cluster program's outputs)"
        return inventory, {name: (value, source) for name, value in facts.items()}

    def operate(self, playbook: str, extravars: dict[str, object]) -> PlaybookResult:
        kept = self.run.state / CLUSTER_OUTPUTS
        if not kept.is_file():
            raise UserError(f"no {kept}: this environment's cluster was never brought up (mlenv up)")
        inventory, owned = self.hosts(json.loads(kept.read_text()))
        return converge(
            self.run, inventory, public_https_port=443, extra_settings=owned, playbook=playbook, extravars=extravars
        )

    def plan(self) -> None:
        """Pulumi previews (with the policy pack) of the programs whose inputs exist; the services'
        check mode needs the cluster, so it waits for the first `mlenv up`."""
        if shutil.which("pulumi") is None:
            raise UserError("Pulumi preview needs the `pulumi` CLI: curl -fsSL https://get.pulumi.com | sh")
        self.preview()

    def preview(self) -> None:
        config, state, report = self.run.config, self.run.state, self.run.report
        summary = self.layer(
            "GPU cluster: preview",
            CLUSTER,
            lambda stack, on: stack.preview(cluster_stack_config(config), on, echo=self.echo()),
        )
        report.info(f"pulumi/cluster would: {describe_changes(summary)}")
        if self.cloud.gitlab is None:
            return
        if not (state / platform_outputs.OUTPUTS_FILE).is_file():
            report.info("pulumi/gitlab: previewed after the first `mlenv up` (it needs the services' outputs)")
            return
        stack_config = gitlab_stack_config(config, platform_outputs.read(state), state)
        summary = self.layer(
            "GitLab space: preview", GITLAB, lambda stack, on: stack.preview(stack_config, on, echo=self.echo())
        )
        report.info(f"pulumi/gitlab would: {describe_changes(summary)}")

    def down(self, *, purge: bool, confirm: Confirm) -> str:
        """The services on the operator's hosts are theirs to stop; --purge destroys what Pulumi made,
        the GitLab space first (it holds the cluster's kubeconfig), then the cluster."""
        environment = self.run.config.environment
        if not purge:
            raise UserError(
                "profile cloud: the services run on your inventory's hosts (stop them with systemctl there); "
                "`mlenv down --purge` destroys the GPU cluster and the GitLab space"
            )
        self.confirmed(confirm, f"This destroys the GPU cluster and the GitLab group of '{environment}'", environment)
        self.destroy()
        forget_runs(self.run.state)
        return f"{environment}: cluster and GitLab space destroyed; the hosts' data and the secrets are kept"

    def destroy(self) -> None:
        if self.cloud.gitlab is not None:
            self.layer("GitLab space: destroy", GITLAB, lambda stack, on: stack.destroy(on, echo=self.echo()))
        self.layer("GPU cluster: destroy", CLUSTER, lambda stack, on: stack.destroy(on, echo=self.echo()))
        (self.run.secrets / KUBECONFIG_FILE).unlink(missing_ok=True)
