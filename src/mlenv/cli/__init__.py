"""The `mlenv` command. Each subcommand lives in its own module and imports its heavy
dependencies inside the command function, so `mlenv --help` stays instant."""

from __future__ import annotations

from pathlib import Path

import click

from mlenv import __version__
from mlenv.app import Application


class MlenvGroup(click.Group):
    """Reports a user-facing error once, here at the edge: one message, its problems, its exit code."""

    def invoke(self, ctx: click.Context) -> object:
        from mlenv.errors import UserError, from_os_error

        try:
            return super().invoke(ctx)
        except (UserError, OSError) as err:
            found = err if isinstance(err, UserError) else from_os_error(err)
            app = ctx.obj if isinstance(ctx.obj, Application) else Application()
            app.report(found)
            ctx.exit(found.code)


@click.group(cls=MlenvGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, envvar="MLENV_VERBOSE", help="Stream the full Ansible output.")
@click.option(
    "-c",
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="MLENV_CONFIG",
    help="The environment's mlenv.yaml [default: ./mlenv.yaml if present, else the built-in local profile].",
)
@click.version_option(__version__, prog_name="mlenv")
@click.pass_context
def main(ctx: click.Context, verbose: bool, config_file: Path | None) -> None:
    """A complete, secure ML environment in one command."""
    ctx.obj = Application(verbose=verbose, config_file=config_file)


from mlenv.cli.backup import backup, restore  # noqa: E402
from mlenv.cli.bundle import bundle  # noqa: E402
from mlenv.cli.credentials import credentials  # noqa: E402
from mlenv.cli.dataset import dataset  # noqa: E402
from mlenv.cli.down import down  # noqa: E402
from mlenv.cli.init import init  # noqa: E402
from mlenv.cli.model import lineage, model  # noqa: E402
from mlenv.cli.plan import plan  # noqa: E402
from mlenv.cli.report import report  # noqa: E402
from mlenv.cli.rotate import rotate  # noqa: E402
from mlenv.cli.runs import runs  # noqa: E402
from mlenv.cli.status import status  # noqa: E402
from mlenv.cli.up import up  # noqa: E402
from mlenv.cli.upgrade import upgrade  # noqa: E402
from mlenv.cli.version import version  # noqa: E402

COMMANDS = (
    init,
    plan,
    up,
    status,
    credentials,
    down,
    backup,
    restore,
    rotate,
    upgrade,
    bundle,
    dataset,
    model,
    lineage,
    runs,
    report,
    version,
)
for command in COMMANDS:
    main.add_command(command)
