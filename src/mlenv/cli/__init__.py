"""The `mlenv` command. Each subcommand lives in its own module and imports its heavy
dependencies inside the command function, so `mlenv --help` stays instant."""

from __future__ import annotations

import click

from mlenv import __version__
from mlenv.app import Application


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, envvar="MLENV_VERBOSE", help="Stream the full Ansible output.")
@click.version_option(__version__, prog_name="mlenv")
@click.pass_context
def main(ctx: click.Context, verbose: bool) -> None:
    """A complete, secure ML environment in one command."""
    ctx.obj = Application(verbose=verbose)


from mlenv.cli.down import down  # noqa: E402
from mlenv.cli.up import up  # noqa: E402
from mlenv.cli.version import version  # noqa: E402

main.add_command(up)
main.add_command(down)
main.add_command(version)
