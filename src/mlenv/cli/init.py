from __future__ import annotations

from pathlib import Path

import click

from mlenv.app import Application


@click.command()
@click.option("--profile", type=click.Choice(["local", "cloud"]), default="local", show_default=True)
@click.option("--environment", default="local", show_default=True, help="Name of the environment.")
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
@click.argument("path", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.pass_obj
def init(app: Application, profile: str, environment: str, force: bool, path: Path | None) -> None:
    """Write a commented starter mlenv.yaml (default: ./mlenv.yaml, or --config)."""
    from mlenv.config import DEFAULT_FILE, ConfigError, load
    from mlenv.starter import starter

    target = path or app.config_file or Path(DEFAULT_FILE)
    if target.exists() and not force:
        app.abort(f"{target} exists; pass --force to overwrite it")
    target.write_text(starter(profile, environment))
    try:
        load(target)
    except ConfigError as err:
        target.unlink()
        app.abort(f"--environment: {'; '.join(err.problems)}")
    app.success(f"wrote {target} (profile {profile}); edit it, then `mlenv plan` and `mlenv up`")
