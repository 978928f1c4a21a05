from __future__ import annotations

import click

from mlenv.app import Application
from mlenv.cli.options import host_name_option


@click.command()
@click.option("--purge", is_flag=True, help="Also remove the local host and its data (asks to type its name).")
@host_name_option
@click.pass_obj
def down(app: Application, purge: bool, host_name: str) -> None:
    """Stop the local ML environment; data is kept unless --purge."""
    from mlenv.localhost import LocalHost
    from mlenv.paths import project_root

    host = LocalHost(project_root(), name=host_name)
    if purge:
        answer = click.prompt(f"This deletes every service's data. Type '{host.name}' to confirm", default="")
        if answer != host.name:
            app.abort("not confirmed; nothing removed")
        removed = host.remove()
        app.success(f"{host.name} removed" if removed else f"{host.name} did not exist")
        return
    stopped = host.stop()
    app.success(f"{host.name} stopped (data kept)" if stopped else f"{host.name} was not running")
