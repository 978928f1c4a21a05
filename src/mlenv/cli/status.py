from __future__ import annotations

import click

from mlenv.app import Application


@click.command()
@click.pass_obj
def status(app: Application) -> None:
    """Health of every endpoint through TLS with auth; exit code 1 when something is down."""
    from rich.table import Table

    from mlenv import outputs as platform
    from mlenv.health import check_all

    outputs = platform.read(app.state)
    # The local profiles publish on loopback: their service names need no DNS.
    results = check_all(outputs, app.state, app.profile.status_address)
    table = Table(title=f"mlenv status: {outputs.environment}")
    for column in ("service", "URL", "state", "detail", "ms"):
        table.add_column(column, justify="right" if column == "ms" else "left")
    for health in results:
        state = "[green]up[/green]" if health.ok else "[red]down[/red]"
        table.add_row(health.service, health.url, state, health.detail, f"{health.milliseconds:.0f}")
    app.console.print(table)
    down = [health.service for health in results if not health.ok]
    if down:
        app.abort(f"down: {', '.join(down)}")
