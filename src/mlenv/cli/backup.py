"""`mlenv backup` and `mlenv restore`: the environment's data, encrypted, and back.

Backups are kept in a folder (default ~/.local/share/mlenv/backups) or on another S3 endpoint
(`--to s3://bucket/prefix`: made in the state folder, uploaded, then removed here).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import click

from mlenv.app import Application

if TYPE_CHECKING:
    from mlenv.backup.remote import Remote

KEY_HELP = "The age identity file (made on the first backup; keep a copy away from the backups)."


def default_destination() -> Path:
    base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local/share")
    return base / "mlenv" / "backups"


def backup_target(destination: str | None) -> Path | Remote:
    from mlenv.backup.remote import SCHEME, Remote

    if destination and destination.startswith(SCHEME):
        return Remote.parse(destination)
    return Path(destination).expanduser() if destination else default_destination()


def backup_key(app: Application, key: Path | None) -> Path:
    from mlenv.backup.archive import default_key

    return key or default_key(app.config.environment)


def _size(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


@contextmanager
def _platform_names(app: Application) -> Iterator[None]:
    """The platform's own names resolve where this profile publishes them (a remote on its S3 site)."""
    from mlenv import clients
    from mlenv import outputs as platform

    if not (app.state / platform.OUTPUTS_FILE).is_file():
        yield
        return
    with clients.names_resolve_to(clients.domain_of(platform.read(app.state)), app.profile.status_address):
        yield


destination_option = click.option(
    "--to",
    "destination",
    envvar="MLENV_BACKUP_DIR",
    help="Folder, or s3://bucket/prefix, that keeps the backups [default: ~/.local/share/mlenv/backups].",
)
key_option = click.option(
    "--key", type=click.Path(dir_okay=False, path_type=Path), envvar="MLENV_BACKUP_KEY", help=KEY_HELP
)


@click.command()
@destination_option
@key_option
@click.option("--keep", type=click.IntRange(min=0), default=7, show_default=True, help="Backups kept (0: all).")
@click.option("--list", "listing", is_flag=True, help="List the backups there instead.")
@click.pass_obj
def backup(app: Application, destination: str | None, key: Path | None, keep: int, listing: bool) -> None:
    """Back up every database, bucket (with versions), Label Studio's media and the secrets, encrypted."""
    target = backup_target(destination)
    if listing:
        show_backups(app, target, app.config.environment)
        return
    started = time.monotonic()
    with app.locked("backup"):
        where, size = take_backup(app, target, key, keep)
    app.success(
        f"backup {where} ({size / 1e6:.1f} MB) in {time.monotonic() - started:.0f}s; "
        f"it opens only with {backup_key(app, key)}"
    )


def take_backup(app: Application, target: Path | Remote, key: Path | None, keep: int) -> tuple[str, int]:
    """One backup into a folder or onto an S3 endpoint, then the retention; where it is and its size."""
    from mlenv.backup import archive, remote

    environment = app.config.environment

    def make(into: Path) -> Path:
        operate, address = app.profile.operate, app.profile.status_address
        return archive.create(app.state, environment, into, backup_key(app, key), operate, app, address=address)

    if isinstance(target, Path):
        folder = make(target)
        archive.prune(target, environment, keep, app)
        return str(folder), _size(folder)
    with archive.private_folder(app.state, "upload-") as local, _platform_names(app):
        folder = make(local)
        size = _size(folder)
        s3 = remote.client()
        remote.upload(s3, folder, target)
        for name in remote.prune(s3, target, environment, keep):
            app.info(f"retention: removed {name}")
    return f"{target}/{folder.name}", size


def show_backups(app: Application, target: Path | Remote, environment: str) -> None:
    from rich.table import Table

    from mlenv.backup import archive, remote
    from mlenv.backup.manifest import read

    table = Table(title=f"backups of {environment} in {target}")
    if isinstance(target, Path):
        for column in ("backup", "created", "MB", "parts", "rows", "object versions"):
            table.add_column(column)
        for folder in reversed(archive.backups_in(target, environment)):
            manifest = read(folder)
            rows = sum(sum(part.counts.values()) for part in manifest.of_kind("postgresql"))
            versions = sum(part.counts["versions"] for part in manifest.of_kind("objects"))
            size, parts = f"{_size(folder) / 1e6:.1f}", str(len(manifest.parts))
            table.add_row(folder.name, manifest.created.isoformat(), size, parts, str(rows), str(versions))
    else:
        table.add_column("backup")
        with _platform_names(app):
            for name in reversed(remote.names(remote.client(), target, environment)):
                table.add_row(name)
    app.console.print(table)


@click.command()
@click.argument("name", required=False)
@destination_option
@key_option
@click.option("--yes", is_flag=True, help="Do not ask for the environment's name first.")
@click.option(
    "--check", "check_only", is_flag=True, help="Only check that the backup is whole and opens; change nothing."
)
@click.pass_obj
def restore(
    app: Application, name: str | None, destination: str | None, key: Path | None, yes: bool, check_only: bool
) -> None:
    """Replace the environment's data by a backup's (NAME: a folder, or a backup's name; default the newest).

    Everything is checked first; a damaged, partial or wrong-key backup changes nothing. A purged
    or lost host is made again first."""
    from mlenv.backup import archive

    environment = app.config.environment
    with archive.private_folder(app.state, "download-") as downloads:
        folder = _chosen(app, name, backup_target(destination), environment, downloads)
        if check_only:
            with archive.private_folder(app.state, "check-") as plain:
                manifest = archive.verify(folder, backup_key(app, key), plain, environment)
            app.success(f"{folder.name}: {len(manifest.parts)} parts whole; each decrypts to what was backed up")
            return
        question = f"This replaces every service's data in {environment} by {folder.name}'s. Type '{environment}'"
        if not yes and click.prompt(f"{question} to confirm", default="") != environment:
            app.abort("not confirmed; nothing changed")
        _restore(app, folder, backup_key(app, key))


def _restore(app: Application, folder: Path, key: Path) -> None:
    from mlenv import health
    from mlenv import outputs as platform
    from mlenv.backup import archive

    started = time.monotonic()
    with app.locked("restore"):
        manifest = archive.restore(
            folder,
            app.state,
            app.config.environment,
            key,
            bring_up=app.profile.up,
            operate=app.profile.operate,
            report=app,
            address=app.profile.status_address,
        )
    down = health.wait_until_up(platform.read(app.state), app.state, app.profile.status_address, timeout_s=300)
    if down:
        app.abort(f"restored, but down after 300 s: {', '.join(down)} (mlenv status)")
    app.success(
        f"restored {folder.name} ({len(manifest.parts)} parts, every count as backed up) "
        f"in {time.monotonic() - started:.0f}s; every service answers"
    )


def _chosen(app: Application, name: str | None, target: Path | Remote, environment: str, downloads: Path) -> Path:
    """The backup's folder here (downloaded first from a remote)."""
    from mlenv.backup import archive, remote

    if name and name.startswith(remote.SCHEME):
        where = remote.Remote.parse(name)
        target, name = remote.Remote(where.bucket, where.prefix.rpartition("/")[0]), where.prefix.rpartition("/")[2]
    if isinstance(target, Path):
        if name is None:
            found = archive.backups_in(target, environment)
            if not found:
                app.abort(f"no complete backup of {environment} in {target} (mlenv backup --list)")
            return found[-1]
        given = Path(name)
        return given if given.is_absolute() or given.exists() else target / name
    with _platform_names(app):
        s3 = remote.client()
        if name is None:
            found_names = remote.names(s3, target, environment)
            if not found_names:
                app.abort(f"no complete backup of {environment} in {target} (mlenv backup --list --to {target})")
            name = found_names[-1]
        app.info(f"downloading {target}/{name} …")
        return remote.download(s3, target, name, downloads)
