from __future__ import annotations

import click

from mlenv.app import Application


@click.command()
@click.option("--purge", is_flag=True, help="Also remove the local host and its data (asks to type its name).")
@click.pass_obj
def down(app: Application, purge: bool) -> None:
    """Stop the local ML environment; data is kept unless --purge."""
    from mlenv.localhost import LocalHostError
    from mlenv.lock import EnvironmentBusy, environment_lock
    from mlenv.orchestrate import local_host

    if app.config.local.target == "this-host":
        app.abort("local.target is this-host: stop the services with systemctl; mlenv removes nothing on this machine")
    host = local_host(app)
    try:
        with environment_lock(app.state, "down"):
            if purge:
                answer = click.prompt(f"This deletes every service's data. Type '{host.name}' to confirm", default="")
                if answer != host.name:
                    app.abort("not confirmed; nothing removed")
                removed = host.remove()
                app.success(f"{host.name} removed" if removed else f"{host.name} did not exist")
                app.info(f"credentials kept in {app.state / 'secrets'} (delete the folder to forget them)")
                return
            stopped = host.stop()
    except (EnvironmentBusy, LocalHostError) as err:
        app.abort(str(err))
    app.success(f"{host.name} stopped (data kept)" if stopped else f"{host.name} was not running")
