from __future__ import annotations

import click

from mlenv.app import Application


@click.command()
@click.option("--purge", is_flag=True, help="Also remove the local host and its data (asks to type its name).")
@click.pass_obj
def down(app: Application, purge: bool) -> None:
    """Stop the local ML environment; data is kept unless --purge."""
    from mlenv.localhost import LocalHost
    from mlenv.paths import project_root

    host = LocalHost(project_root())
    if purge:
        answer = click.prompt(f"This deletes every service's data. Type '{host.name}' to confirm", default="")
        if answer != host.name:
            app.abort("not confirmed; nothing removed")
        removed = host.remove()
        app.success(f"{host.name} removed" if removed else f"{host.name} did not exist")
        return
    stopped = host.stop()
    app.success(f"{host.name} stopped (data kept)" if stopped else f"{host.name} was not running")
