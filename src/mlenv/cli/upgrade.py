"""`mlenv upgrade`: MLflow and Label Studio to the releases mlenv pins (or mlenv.yaml's `versions`).

A backup of the whole environment first; then the converge, in which each role installs the new release
beside the running one, dumps its databases, migrates, checks health and switches, or puts the old release
and the dumps back when any of that fails.
"""

from __future__ import annotations

import time
from pathlib import Path

import click

from mlenv.app import Application
from mlenv.cli.backup import backup_key, backup_target, destination_option, key_option


@click.command()
@destination_option
@key_option
@click.option("--keep", type=click.IntRange(min=0), default=7, show_default=True, help="Backups kept (0: all).")
@click.option("--no-backup", is_flag=True, help="Skip the backup before (the roles still dump what they migrate).")
@click.option("--check", is_flag=True, help="Only say what would be upgraded.")
@click.pass_obj
def upgrade(
    app: Application, destination: str | None, key: Path | None, keep: int, no_backup: bool, check: bool
) -> None:
    """Upgrade the services to the pinned releases: back up, then converge; a failed migration rolls back."""
    from rich.table import Table

    from mlenv import outputs as platform
    from mlenv import releases
    from mlenv.cli.backup import take_backup
    from mlenv.cli.up import show_summary

    before = releases.plan(app.config, platform.read(app.state))
    table = Table(title=f"mlenv upgrade: {app.config.environment}")
    for column in ("service", "running", "after the upgrade"):
        table.add_column(column)
    for release in before:
        table.add_row(release.title, release.running or "(not recorded)", release.wanted if release.changes else "=")
    app.console.print(table)
    if not any(release.changes for release in before):
        app.success("nothing to upgrade: every service runs its pinned release")
        return
    if check:
        return
    started = time.monotonic()
    with app.locked("upgrade"):
        if not no_backup:
            where, size = take_backup(app, backup_target(destination), key, keep)
            opens = backup_key(app, key)
            app.info(f"backup before the upgrade: {where} ({size / 1e6:.1f} MB; it opens only with {opens})")
        result = app.profile.up()
    written = platform.read(app.state)
    upgraded = [one for one in before if one.changes]
    done = ", ".join(f"{one.title} {one.running} → {written.versions.get(one.service)}" for one in upgraded)
    app.success(f"upgraded in {time.monotonic() - started:.0f}s: {done}; {result.changed} changes; log: {result.log}")
    show_summary(app, written, app.state)
