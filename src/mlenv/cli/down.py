from __future__ import annotations

import click

from mlenv.app import Application


@click.command()
@click.option("--purge", is_flag=True, help="Also remove the local host and its data (asks to type its name).")
@click.pass_obj
def down(app: Application, purge: bool) -> None:
    """Stop the local ML environment; data is kept unless --purge (cloud: --purge destroys the stacks)."""
    with app.locked("down"):
        done = app.profile.down(purge=purge, confirm=lambda question: click.prompt(question, default=""))
    app.success(done)
