from __future__ import annotations

import click

from mlenv.app import Application


@click.command()
@click.pass_obj
def plan(app: Application) -> None:
    """What `mlenv up` would change (Ansible check mode; Pulumi preview for the cloud profile)."""
    from mlenv.localhost import LocalHostError
    from mlenv.orchestrate import connection_for, converge, local_host, local_inventory

    config = app.config
    app.info(f"environment {config.environment}, profile {config.profile}: configuration valid")
    if config.profile == "cloud":
        plan_cloud(app)
        return
    host = local_host(app)
    state = host.state() if config.local.target == "container" else "running"
    if state != "running":
        what = "create" if state == "missing" else "start"
        app.info(f"would {what} the local host '{host.name}', then install and configure every service")
        return
    try:
        with app.locked("plan"):
            result = converge(app, local_inventory(app, connection_for(app, host)), check=True)
    except LocalHostError as err:
        app.abort(str(err))
    if not result.ok:
        app.abort(f"the check failed ({result.failed} failed tasks); full log: {result.log}")
    if result.changed:
        app.info(f"{result.changed} change(s) would be made; full diff: {result.log}")
    else:
        app.success("nothing would change")


def plan_cloud(app: Application) -> None:
    """Pulumi previews (with the policy pack) of the programs whose inputs exist; the services'
    check mode needs the cluster, so it waits for the first `mlenv up`."""
    import shutil

    from mlenv import cloud

    if shutil.which("pulumi") is None:
        app.abort("Pulumi preview needs the `pulumi` CLI: curl -fsSL https://get.pulumi.com | sh")
    with app.locked("plan"):
        cloud.preview(app)
