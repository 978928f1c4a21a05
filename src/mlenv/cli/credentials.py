from __future__ import annotations

import shlex
from pathlib import Path
from typing import TYPE_CHECKING

import click

from mlenv.app import Application

if TYPE_CHECKING:
    from mlenv.outputs import Outputs

CLOUD_SECRETS = [
    ("cluster", "kubeconfig", "kubeconfig"),
    ("gitlab", "pipeline trigger token", "gitlab/trigger_token"),
    ("gitlab", "registry deploy token", "gitlab/deploy_token"),
]


# Client variable → (service, the account's secret; None: the service's URL, "username": its username).
CLIENT_VARIABLES = [
    ("MLFLOW_TRACKING_URI", "mlflow", None),
    ("MLFLOW_TRACKING_USERNAME", "mlflow", "username"),
    ("MLFLOW_TRACKING_PASSWORD", "mlflow", "password"),
    ("MLFLOW_S3_ENDPOINT_URL", "object_store", None),
    ("AWS_ENDPOINT_URL_S3", "object_store", None),
    ("AWS_ACCESS_KEY_ID", "object_store", "access_key"),
    ("AWS_SECRET_ACCESS_KEY", "object_store", "secret_key"),
    ("LABEL_STUDIO_URL", "label_studio", None),
    ("LABEL_STUDIO_API_KEY", "label_studio", "api_token"),
]


@click.command()
@click.option("--show-secrets", is_flag=True, help="Print the secrets themselves (otherwise only where they are).")
@click.option(
    "--env",
    "as_env",
    is_flag=True,
    help='Print shell exports of the clients\' variables (eval "$(mlenv credentials --env)"); '
    "secrets are read from their files by the shell, never printed.",
)
@click.pass_obj
def credentials(app: Application, show_secrets: bool, as_env: bool) -> None:
    """Service URLs, usernames and where each secret is kept (0600 files)."""
    from rich.table import Table

    from mlenv import outputs as platform

    outputs = platform.read(app.state)
    if as_env:
        for line in exports(outputs, app.state):
            app.raw(line)
        return
    secrets = app.state / platform.SECRETS_DIR
    table = Table(title=f"mlenv credentials: {outputs.environment}")
    for column in ("service", "URL", "username", "secret", "value" if show_secrets else "file"):
        table.add_column(column)

    def add(service: str, url: str, username: str, kind: str, path: Path) -> None:
        shown = (path.read_text().strip() if path.is_file() else "(missing)") if show_secrets else str(path)
        table.add_row(service, url, username, kind, shown)

    for service, endpoint in outputs.services.items():
        if endpoint.account is None:
            continue
        for kind in endpoint.account.secrets:
            path = platform.secret_file(app.state, endpoint.account, kind)
            add(service, endpoint.url, endpoint.account.username, kind, path)
    # The cloud profile's: what the cluster and GitLab programs returned (shown only when they exist).
    for service, kind, relative in CLOUD_SECRETS:
        if (secrets / relative).is_file():
            add(service, "", "", kind, secrets / relative)
    for runner in sorted((secrets / "gitlab").glob("runner-*.toml")):
        add("gitlab", "", "", f"{runner.stem} config.toml", runner)
    app.console.print(table)
    if outputs.ca_certificate:
        app.info(f"CA certificate to trust: {outputs.ca_certificate}")
    if not show_secrets:
        app.info("secrets stay in their files; `mlenv credentials --show-secrets` prints them")


def exports(outputs: Outputs, state: Path) -> list[str]:
    """`export` lines of the variables the MLflow, boto3 and Label Studio clients read (the names GitLab
    CI jobs get), as the operator's accounts; a secret's value is `$(cat <its file>)`."""
    from mlenv import outputs as platform
    from mlenv.clients import DATASETS_BUCKET

    lines = []
    for variable, service, part in CLIENT_VARIABLES:
        endpoint = outputs.services.get(service)  # type: ignore[call-overload]
        account = endpoint.account if endpoint else None
        if part is None and endpoint:
            lines.append(f"export {variable}={shlex.quote(endpoint.url)}")
        elif part == "username" and account:
            lines.append(f"export {variable}={shlex.quote(account.username)}")
        elif account and part in account.secrets:
            secret = shlex.quote(str(platform.secret_file(state, account, part)))
            lines.append(f'export {variable}="$(cat {secret})"')
    if "object_store" in outputs.services:
        lines.append(f"export AWS_DEFAULT_REGION={shlex.quote(outputs.region)}")
        if DATASETS_BUCKET in outputs.buckets:
            lines.append(f"export MLENV_DATASET_BUCKET={DATASETS_BUCKET}")
    if outputs.ca_certificate:
        lines += [
            f"export {name}={shlex.quote(outputs.ca_certificate)}" for name in ("REQUESTS_CA_BUNDLE", "AWS_CA_BUNDLE")
        ]
    return lines
