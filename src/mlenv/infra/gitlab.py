"""The team's GitLab space: group, subgroups, projects, the platform's CI/CD variables, the retrain
trigger, a deploy token, and runners whose job pods land on the right nodes."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import pulumi
import pulumi_gitlab as gitlab
from pydantic import BaseModel, ConfigDict

from mlenv.config import GitLab, looks_secret
from mlenv.infra.gitlab_ci import runner_config, starter_project_files
from mlenv.paths import project_root


class Platform(BaseModel):
    """The services' public settings, as Ansible's outputs.json gives them (no secrets)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    tracking_uri: str
    s3_endpoint: str
    label_studio_url: str | None = None
    dataset_bucket: str = "datasets"
    mlflow_username: str = "admin"


@dataclass
class PlatformSecrets:
    mlflow_password: pulumi.Input[str]
    aws_access_key_id: pulumi.Input[str]
    aws_secret_access_key: pulumi.Input[str]
    label_studio_api_key: pulumi.Input[str] | None = None
    kubeconfig: pulumi.Input[str] | None = None
    # Values of the extra variables that name a `secret_config` key.
    extra: dict[str, pulumi.Input[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class Variable:
    key: str
    value: pulumi.Input[str]
    scope: str = "*"
    file: bool = False
    protected: bool | None = None  # None: protected exactly when the key looks secret

    @property
    def secret(self) -> bool:
        return looks_secret(self.key)


def platform_variables(spec: GitLab, platform: Platform, secrets: PlatformSecrets) -> list[Variable]:
    """The public interface (docs/architecture.md, "Contracts"); secrets are masked, protected and hidden."""
    found = [
        Variable("MLFLOW_TRACKING_URI", platform.tracking_uri),
        Variable("MLFLOW_TRACKING_USERNAME", platform.mlflow_username),
        Variable("MLFLOW_TRACKING_PASSWORD", secrets.mlflow_password),
        Variable("MLFLOW_S3_ENDPOINT_URL", platform.s3_endpoint),
        Variable("AWS_ACCESS_KEY_ID", secrets.aws_access_key_id),
        Variable("AWS_SECRET_ACCESS_KEY", secrets.aws_secret_access_key),
        Variable("MLENV_DATASET_BUCKET", platform.dataset_bucket),
        Variable("MLENV_NAMESPACE", spec.runner_namespace),
        # The runner the starter pipeline's train job asks for: the GPU pool's when there is one.
        Variable("MLENV_TRAIN_RUNNER", "gpu" if spec.gpu_pool else "cpu"),
    ]
    if platform.label_studio_url:
        found.append(Variable("LABEL_STUDIO_URL", platform.label_studio_url))
    if secrets.label_studio_api_key is not None:
        found.append(Variable("LABEL_STUDIO_API_KEY", secrets.label_studio_api_key))
    if secrets.kubeconfig is not None:
        # A file variable per deployment environment; multi-line, so GitLab cannot mask it: protected instead.
        found += [
            Variable("KUBECONFIG", secrets.kubeconfig, scope=env, file=True, protected=True)
            for env in spec.environments
        ]
    for extra in spec.variables:
        value = extra.value if extra.value is not None else secrets.extra[extra.secret_config or ""]
        found.append(Variable(extra.key, value, scope=extra.environment_scope, protected=extra.protected))
    return found


class TeamSpace(pulumi.ComponentResource):
    """Outputs: group_id, group_path, projects, trigger_token (secret), deploy_token (secret),
    runner_configs (secret: config.toml per runner, with its token)."""

    def __init__(
        self,
        name: str,
        spec: GitLab,
        platform: Platform,
        secrets: PlatformSecrets,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        missing = [v.secret_config for v in spec.variables if v.secret_config and v.secret_config not in secrets.extra]
        if missing:
            raise ValueError(f"no secret config value for {', '.join(sorted(missing))} (pulumi config set --secret)")
        super().__init__("mlenv:gitlab:TeamSpace", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        parent_id = gitlab.get_group_output(full_path=spec.parent_group).group_id if spec.parent_group else None
        self.group = gitlab.Group(
            name,
            name=spec.group_path,
            path=spec.group_path,
            parent_id=parent_id,
            visibility_level="private",
            default_branch="main",
            project_creation_level="maintainer",
            subgroup_creation_level="owner",
            request_access_enabled=False,
            prevent_forking_outside_group=True,
            auto_devops_enabled=False,
            opts=child,
        )
        namespaces = {"": self.group.id}
        for subgroup in spec.subgroups:
            namespaces[subgroup] = gitlab.Group(
                f"{name}-{subgroup}",
                name=subgroup,
                path=subgroup,
                parent_id=self.group.id.apply(int),
                visibility_level="private",
                opts=child,
            ).id
        self.projects = {
            project.rsplit("/", 1)[-1]: self._project(name, project, namespaces) for project in spec.projects
        }

        self.variables = [self._variable(name, variable) for variable in platform_variables(spec, platform, secrets)]
        training = self.projects[spec.training_project]
        self.trigger = gitlab.PipelineTrigger(
            f"{name}-retrain-trigger",
            project=training.id,
            description="Label Studio → retrain (mlenv retrain webhook)",
            opts=child,
        )
        expires = (dt.datetime.now(dt.UTC).date() + dt.timedelta(days=spec.deploy_token_days)).isoformat()
        self.deploy_token = gitlab.GroupDeployToken(
            f"{name}-serving-pull",
            group=self.group.id,
            name="serving-pull",
            # Serving only pulls images; nothing else.
            scopes=["read_registry"],
            expires_at=expires,
            # The date is computed at creation; later runs must not replace the token.
            opts=pulumi.ResourceOptions(parent=self, ignore_changes=["expiresAt"]),
        )
        self.runners = {
            "cpu": self._runner(name, spec, ["cpu"], untagged=True),
            **({"gpu": self._runner(name, spec, ["gpu", spec.gpu_pool], untagged=False)} if spec.gpu_pool else {}),
        }
        # The starter ML project, committed as it is in templates/ml-project: a clone runs as is.
        self.files = {
            path: gitlab.RepositoryFile(
                f"{name}-starter-{path.replace('/', '-').replace('.', '-').strip('-')}",
                project=training.id,
                file_path=path,
                branch="main",
                content=content,
                encoding="text",
                commit_message=f"mlenv: starter ML project ({path})",
                overwrite_on_create=True,
                opts=child,
            )
            for path, content in starter_project_files(project_root()).items()
        }

        self.trigger_token = pulumi.Output.secret(self.trigger.token)
        self.runner_configs = pulumi.Output.secret(
            pulumi.Output.all(
                **{
                    kind: runner.token.apply(
                        lambda token, kind=kind: runner_config(
                            spec.url, token, spec.runner_namespace, spec.gpu_pool if kind == "gpu" else None
                        )
                    )
                    for kind, runner in self.runners.items()
                }
            )
        )
        self.register_outputs(
            {
                "group_id": self.group.id,
                "group_path": self.group.full_path,
                "projects": {key: project.path_with_namespace for key, project in self.projects.items()},
                "trigger_token": self.trigger_token,
                "deploy_token": pulumi.Output.secret(self.deploy_token.token),
                "runner_configs": self.runner_configs,
            }
        )

    def _project(self, name: str, project: str, namespaces: dict[str, pulumi.Output[str]]) -> gitlab.Project:
        subgroup, _, short = project.rpartition("/")
        created = gitlab.Project(
            f"{name}-{short}",
            name=short,
            path=short,
            namespace_id=namespaces[subgroup].apply(int),
            visibility_level="private",
            default_branch="main",
            initialize_with_readme=True,
            only_allow_merge_if_pipeline_succeeds=True,
            only_allow_merge_if_all_discussions_are_resolved=True,
            remove_source_branch_after_merge=True,
            squash_option="default_on",
            shared_runners_enabled=False,
            group_runners_enabled=True,
            opts=pulumi.ResourceOptions(parent=self),
        )
        gitlab.BranchProtection(
            f"{name}-{short}-main",
            project=created.id,
            branch="main",
            push_access_level="no one",
            merge_access_level="developer",
            allow_force_push=False,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[created]),
        )
        return created

    def _variable(self, name: str, variable: Variable) -> gitlab.GroupVariable:
        protected = variable.secret if variable.protected is None else variable.protected
        masked = variable.secret and not variable.file
        return gitlab.GroupVariable(
            f"{name}-var-{variable.key.lower()}-{variable.scope.replace('*', 'all')}",
            group=self.group.id,
            key=variable.key,
            value=pulumi.Output.secret(variable.value) if variable.secret or variable.file else variable.value,
            masked=masked,
            # Hidden (never shown again in the UI) needs masked.
            hidden=masked,
            protected=protected,
            raw=True,
            variable_type="file" if variable.file else "env_var",
            environment_scope=variable.scope,
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _runner(self, name: str, spec: GitLab, tags: list[str | None], *, untagged: bool) -> gitlab.UserRunner:
        kind = "gpu" if "gpu" in tags else "cpu"
        return gitlab.UserRunner(
            f"{name}-runner-{kind}",
            runner_type="group_type",
            group_id=self.group.id.apply(int),
            tag_lists=[tag for tag in tags if tag],
            untagged=untagged,
            locked=True,
            description=f"mlenv {kind} jobs (Kubernetes executor, namespace {spec.runner_namespace})",
            maximum_timeout=6 * 3600 if kind == "gpu" else 3600,
            opts=pulumi.ResourceOptions(parent=self),
        )
