from __future__ import annotations

import click

from mlenv import __version__
from mlenv.app import Application


@click.command()
@click.pass_obj
def version(app: Application) -> None:
    """Show the mlenv version."""
    app.info(f"mlenv {__version__}")
