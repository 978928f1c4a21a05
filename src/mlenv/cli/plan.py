from __future__ import annotations

import click

from mlenv.app import Application


@click.command()
@click.pass_obj
def plan(app: Application) -> None:
    """What `mlenv up` would change (Ansible check mode; Pulumi preview for the cloud profile)."""
    config = app.config
    app.info(f"environment {config.environment}, profile {config.profile}: configuration valid")
    with app.locked("plan"):
        app.profile.plan()
