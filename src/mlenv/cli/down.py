from __future__ import annotations

import click

from mlenv.app import Application


@click.command()
@click.option("--purge", is_flag=True, help="Also remove the local host and its data (asks to type its name).")
@click.pass_obj
def down(app: Application, purge: bool) -> None:
    """Stop the local ML environment; data is kept unless --purge (cloud: --purge destroys the stacks)."""
    from mlenv.orchestrate import local_host

    if app.config.profile == "cloud":
        down_cloud(app, purge)
        return
    if app.config.local.target == "this-host":
        app.abort("local.target is this-host: stop the services with systemctl; mlenv removes nothing on this machine")
    host = local_host(app)
    with app.locked("down"):
        if purge:
            host.state()  # refuses a container that is not this environment's before asking anything
            answer = click.prompt(f"This deletes every service's data. Type '{host.name}' to confirm", default="")
            if answer != host.name:
                app.abort("not confirmed; nothing removed")
            removed = host.remove()
            app.success(f"{host.name} removed" if removed else f"{host.name} did not exist")
            app.info(f"credentials kept in {app.state / 'secrets'} (delete the folder to forget them)")
            return
        stopped = host.stop()
    app.success(f"{host.name} stopped (data kept)" if stopped else f"{host.name} was not running")


def down_cloud(app: Application, purge: bool) -> None:
    """The services on the operator's hosts are theirs to stop; --purge destroys what Pulumi made."""
    from mlenv import cloud

    environment = app.config.environment
    if not purge:
        app.abort(
            "profile cloud: the services run on your inventory's hosts (stop them with systemctl there); "
            "`mlenv down --purge` destroys the GPU cluster and the GitLab space"
        )
    answer = click.prompt(
        f"This destroys the GPU cluster and the GitLab group of '{environment}'. Type '{environment}' to confirm",
        default="",
    )
    if answer != environment:
        app.abort("not confirmed; nothing removed")
    with app.locked("down"):
        cloud.destroy(app)
    app.success(f"{environment}: cluster and GitLab space destroyed; the hosts' data and the secrets are kept")
