from __future__ import annotations

from pathlib import Path

import click

from mlenv.app import Application

CLOUD_SECRETS = [
    ("cluster", "kubeconfig", "kubeconfig"),
    ("gitlab", "pipeline trigger token", "gitlab/trigger_token"),
    ("gitlab", "registry deploy token", "gitlab/deploy_token"),
]


@click.command()
@click.option("--show-secrets", is_flag=True, help="Print the secrets themselves (otherwise only where they are).")
@click.pass_obj
def credentials(app: Application, show_secrets: bool) -> None:
    """Service URLs, usernames and where each secret is kept (0600 files)."""
    from rich.table import Table

    from mlenv import outputs as platform

    outputs = platform.read(app.state)
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
