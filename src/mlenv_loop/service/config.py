"""The service's settings: a JSON file the role writes (no secrets) and the secrets from the
environment (systemd reads them from a root-only file). Every problem is reported at once."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from mlenv_loop.datasets import NAME
from mlenv_loop.errors import LoopError

CONFIG_ENV = "MLENV_LOOP_CONFIG"
SECRETS = {
    "database_url": "MLENV_LOOP_DATABASE_URL",
    "webhook_secret": "MLENV_LOOP_WEBHOOK_SECRET",
    "api_token": "MLENV_LOOP_API_TOKEN",
    "label_studio_token": "LABEL_STUDIO_API_KEY",
    "s3_access_key": "AWS_ACCESS_KEY_ID",
    "s3_secret_key": "AWS_SECRET_ACCESS_KEY",
}
GITLAB_TOKEN_ENV = "MLENV_LOOP_GITLAB_TRIGGER_TOKEN"  # noqa: S105 (a variable's name)
KUBERNETES_TOKEN_ENV = "MLENV_LOOP_KUBERNETES_TOKEN"  # noqa: S105 (a variable's name)
MODEL_SERVER_PASSWORD_ENV = "MLENV_LOOP_MODEL_SERVER_PASSWORD"  # noqa: S105 (a variable's name)
MLFLOW_PASSWORD_ENV = "MLENV_LOOP_MLFLOW_PASSWORD"  # noqa: S105 (a variable's name)
# The inference gateways send the predictions they answered with this token (and no other right).
PREDICTION_LOG_TOKEN_ENV = "MLENV_LOOP_PREDICTION_LOG_TOKEN"  # noqa: S105 (a variable's name)
# Label Studio logs in to the service's ML backend with this name and the webhook secret.
ML_BACKEND_USER = "label-studio"
DNS_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
UNIT_PREFIX = re.compile(r"^[a-z][a-z0-9-]{0,40}$")
GITLAB_PROJECT = re.compile(r"^([0-9]+|[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)+)$")


class ConfigProblem(LoopError):
    """The service's settings are wrong; the message lists every problem and its key."""


@dataclass(frozen=True)
class LoopProject:
    """A Label Studio project (by title) whose annotations train one model."""

    title: str
    dataset: str
    model: str
    every: int
    after_seconds: int
    # Model-assisted labelling: the service is the project's ML backend, and this share of the
    # tasks (percent) never gets a suggestion.
    assist: bool = True
    control_percent: int = 50
    # Triggers beside the annotation count (the tag `stable` always is one): a schedule (hours,
    # 0 off) and the production model's live accuracy below a share over its latest pairs.
    retrain_every_hours: int = 0
    retrain_below: float | None = None
    live_window: int = 50


@dataclass(frozen=True)
class ServiceAccount:
    """Another service the trigger service calls, and as whom: MLflow (the live accuracy goes on the
    model versions' runs) and the model server (the ML backend's predictions; basic auth when a
    username is given)."""

    url: str
    username: str
    password: str


@dataclass(frozen=True)
class SystemdRunner:
    kind: Literal["systemd"]
    unit: str
    runs_dir: Path
    results_dir: Path


@dataclass(frozen=True)
class GitLabRunner:
    kind: Literal["gitlab"]
    url: str
    project: str
    ref: str
    token: str


@dataclass(frozen=True)
class ArgoRunner:
    """Submits the argo_workflows role's WorkflowTemplate as a Workflow through the Kubernetes API."""

    kind: Literal["argo"]
    api_url: str
    namespace: str
    template: str
    ca_file: str
    token: str


@dataclass(frozen=True)
class ServiceConfig:
    host: str
    port: int
    webhook_url: str
    label_studio_url: str
    s3_endpoint: str
    s3_region: str
    bucket: str
    holdout_percent: int
    quiet_seconds: int
    projects: tuple[LoopProject, ...]
    runner: SystemdRunner | GitLabRunner | ArgoRunner
    ml_backend_url: str
    model_server: ServiceAccount
    mlflow: ServiceAccount
    prediction_log_token: str
    database_url: str
    webhook_secret: str
    api_token: str
    label_studio_token: str
    s3_access_key: str
    s3_secret_key: str

    def project_titled(self, title: str) -> LoopProject | None:
        return next((project for project in self.projects if project.title == title), None)


def _url(value: Any, key: str, problems: list[str]) -> str:
    if not isinstance(value, str) or urlsplit(value).scheme not in {"http", "https"} or not urlsplit(value).netloc:
        problems.append(f"{key}: {value!r} is not an http(s) URL")
        return ""
    return value.rstrip("/")


def _whole(value: Any, key: str, low: int, high: int, problems: list[str]) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        problems.append(f"{key}: {value!r} must be a whole number from {low} to {high}")
        return low
    return value


def _flag(value: Any, key: str, problems: list[str]) -> bool:
    if not isinstance(value, bool):
        problems.append(f"{key}: {value!r} must be true or false")
        return False
    return value


def _share(value: Any, key: str, problems: list[str]) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 1:
        problems.append(f"{key}: {value!r} must be a share between 0 and 1 (or left out)")
        return None
    return float(value)


def _account(found: Any, key: str, url: str, password_env: str, environ: dict[str, str],
             problems: list[str]) -> ServiceAccount:  # fmt: skip
    found = found if isinstance(found, dict) else {}
    return ServiceAccount(
        url=_url(found.get("url", url), f"{key}.url", problems),
        username=str(found.get("username") or ""),
        password=environ.get(password_env, ""),
    )


def _projects(found: Any, problems: list[str]) -> tuple[LoopProject, ...]:
    if not isinstance(found, list):
        problems.append("projects: must be a list")
        return ()
    projects = []
    for index, item in enumerate(found):
        key = f"projects[{index}]"
        if not isinstance(item, dict) or not {"title", "dataset", "model"} <= item.keys():
            problems.append(f"{key}: needs title, dataset and model")
            continue
        for name in ("dataset", "model"):
            if not isinstance(item[name], str) or not NAME.match(item[name]):
                problems.append(f"{key}.{name}: {item[name]!r} must be lower-case letters, digits and dashes")
        if not isinstance(item["title"], str) or not item["title"].strip():
            problems.append(f"{key}.title: give the Label Studio project's title")
        projects.append(
            LoopProject(
                title=str(item["title"]),
                dataset=str(item["dataset"]),
                model=str(item["model"]),
                every=_whole(item.get("every", 20), f"{key}.every", 1, 100_000, problems),
                after_seconds=_whole(item.get("after_seconds", 600), f"{key}.after_seconds", 1, 7 * 86_400, problems),
                assist=_flag(item.get("assist", True), f"{key}.assist", problems),
                control_percent=_whole(item.get("control_percent", 50), f"{key}.control_percent", 0, 100, problems),
                retrain_every_hours=_whole(
                    item.get("retrain_every_hours", 0), f"{key}.retrain_every_hours", 0, 24 * 365, problems
                ),
                retrain_below=_share(item.get("retrain_below"), f"{key}.retrain_below", problems),
                live_window=_whole(item.get("live_window", 50), f"{key}.live_window", 1, 100_000, problems),
            )
        )
    titles = [project.title for project in projects]
    problems += [
        f"projects: title {title!r} is listed twice" for title in sorted(set(titles)) if titles.count(title) > 1
    ]
    return tuple(projects)


def _runner(found: Any, environ: dict[str, str], problems: list[str]) -> SystemdRunner | GitLabRunner | ArgoRunner:
    kind = found.get("kind") if isinstance(found, dict) else None
    if kind == "argo":
        for key in ("namespace", "template"):
            if not isinstance(found.get(key), str) or not DNS_LABEL.match(found[key]):
                problems.append(f"runner.{key}: {found.get(key)!r} must be a Kubernetes name (a DNS label)")
        return ArgoRunner(
            kind="argo",
            api_url=_url(found.get("api_url"), "runner.api_url", problems),
            namespace=str(found.get("namespace")),
            template=str(found.get("template")),
            ca_file=str(found.get("ca_file") or ""),
            token=environ.get(KUBERNETES_TOKEN_ENV, ""),
        )
    if kind == "systemd":
        unit = found.get("unit", "mlenv-train")
        if not isinstance(unit, str) or not UNIT_PREFIX.match(unit):
            problems.append(f"runner.unit: {unit!r} must be a unit name prefix (letters, digits, dashes)")
        return SystemdRunner(
            kind="systemd",
            unit=str(unit),
            runs_dir=Path(found.get("runs_dir", "/var/lib/mlenv-loop/runs")),
            results_dir=Path(found.get("results_dir", "/var/lib/mlenv-train")),
        )
    if kind == "gitlab":
        project = found.get("project")
        if not isinstance(project, str) or not GITLAB_PROJECT.match(project):
            problems.append(f"runner.project: {project!r} must be a GitLab project id or its path (group/name)")
        return GitLabRunner(
            kind="gitlab",
            url=_url(found.get("url"), "runner.url", problems),
            project=str(project),
            ref=str(found.get("ref", "main")),
            token=environ.get(GITLAB_TOKEN_ENV, ""),
        )
    problems.append(f"runner.kind: {kind!r} must be systemd, gitlab or argo")
    return SystemdRunner(kind="systemd", unit="mlenv-train", runs_dir=Path(), results_dir=Path())


def parse(settings: Any, environ: dict[str, str]) -> ServiceConfig:
    if not isinstance(settings, dict):
        raise ConfigProblem("the settings file must hold a JSON object")
    problems: list[str] = []
    s3 = settings.get("s3") if isinstance(settings.get("s3"), dict) else {}
    secrets = {name: environ.get(variable, "") for name, variable in SECRETS.items()}
    problems += [f"{SECRETS[name]} is not set" for name, value in secrets.items() if not value]
    config = ServiceConfig(
        host=str(settings.get("host", "127.0.0.1")),
        port=_whole(settings.get("port", 8095), "port", 1024, 65535, problems),
        webhook_url=_url(settings.get("webhook_url"), "webhook_url", problems),
        label_studio_url=_url(settings.get("label_studio_url"), "label_studio_url", problems),
        s3_endpoint=_url(s3.get("endpoint"), "s3.endpoint", problems),
        s3_region=str(s3.get("region", "us-east-1")),
        bucket=str(s3.get("bucket", "datasets")),
        holdout_percent=_whole(settings.get("holdout_percent", 20), "holdout_percent", 1, 99, problems),
        quiet_seconds=_whole(settings.get("quiet_seconds", 5), "quiet_seconds", 0, 3600, problems),
        projects=_projects(settings.get("projects", []), problems),
        runner=_runner(settings.get("runner"), environ, problems),
        ml_backend_url=_url(settings.get("ml_backend_url", "http://127.0.0.1:8095/ml"), "ml_backend_url", problems),
        model_server=_account(
            settings.get("model_server"),
            "model_server",
            "http://127.0.0.1:8090",
            MODEL_SERVER_PASSWORD_ENV,
            environ,
            problems,
        ),
        mlflow=_account(
            settings.get("mlflow"), "mlflow", "http://127.0.0.1:5000", MLFLOW_PASSWORD_ENV, environ, problems
        ),
        prediction_log_token=environ.get(PREDICTION_LOG_TOKEN_ENV, ""),
        **secrets,
    )
    if problems:
        raise ConfigProblem("the trigger service's settings are not valid: " + "; ".join(problems))
    return config


def load(environ: dict[str, str] | None = None) -> ServiceConfig:
    environ = dict(os.environ if environ is None else environ)
    path = Path(environ.get(CONFIG_ENV, "/etc/mlenv-loop/loop.json"))
    try:
        settings = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ConfigProblem(f"cannot read the settings file {path}: {err}") from None
    return parse(settings, environ)
