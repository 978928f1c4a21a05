"""Options more than one command takes."""

from __future__ import annotations

import click

host_name_option = click.option(
    "--host-name",
    default="mlenv-local",
    show_default=True,
    envvar="MLENV_LOCAL_HOST",
    help="Name of the local systemd container host.",
)
