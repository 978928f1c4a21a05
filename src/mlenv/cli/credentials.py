from __future__ import annotations

import click

from mlenv.app import Application
from mlenv.cli.outputs import read_outputs


@click.command()
@click.option("--show-secrets", is_flag=True, help="Print the secrets themselves (otherwise only where they are).")
@click.pass_obj
def credentials(app: Application, show_secrets: bool) -> None:
    """Service URLs, usernames and where each secret is kept (0600 files)."""
    from rich.table import Table

    outputs = read_outputs(app)
    secrets = app.state / "secrets"
    table = Table(title=f"mlenv credentials: {outputs['environment']}")
    for column in ("service", "URL", "username", "secret", "value" if show_secrets else "file"):
        table.add_column(column)
    for service, account in outputs.get("accounts", {}).items():
        for kind, relative in account["secrets"].items():
            path = secrets / relative
            shown = (path.read_text().strip() if path.is_file() else "(missing)") if show_secrets else str(path)
            table.add_row(service, outputs["urls"].get(service, ""), account["username"], kind, shown)
    app.console.print(table)
    if outputs.get("ca_certificate"):
        app.info(f"CA certificate to trust: {outputs['ca_certificate']}")
    if not show_secrets:
        app.info("secrets stay in their files; `mlenv credentials --show-secrets` prints them")
