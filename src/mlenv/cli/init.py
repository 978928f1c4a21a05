from __future__ import annotations

import shutil
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
        app.abort(f"{target} exists; pass --force to overwrite it (the old one is kept beside it)")
    # Written and checked beside the target first: a bad option changes nothing that exists.
    candidate = target.with_name(f".{target.name}.new")
    candidate.write_text(starter(profile, environment))
    try:
        load(candidate)
    except ConfigError as err:
        candidate.unlink()
        app.abort(f"--environment: {'; '.join(err.problems)}")
    kept = keep_old(target)
    candidate.replace(target)
    old = f"; the old one is {kept}" if kept else ""
    app.success(f"wrote {target} (profile {profile}){old}; edit it, then `mlenv plan` and `mlenv up`")


def keep_old(target: Path) -> Path | None:
    """Copy an existing file to TARGET.bak (or .bak.1, .bak.2, … when those exist): never lost."""
    if not target.exists():
        return None
    backup, number = target.with_name(f"{target.name}.bak"), 0
    while backup.exists():
        number += 1
        backup = target.with_name(f"{target.name}.bak.{number}")
    shutil.copy2(target, backup)
    return backup
