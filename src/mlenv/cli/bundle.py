"""`mlenv bundle DIR`: everything a converge of this configuration downloads, in one folder, for sites
whose hosts reach no package index (or to make a cold converge faster)."""

from __future__ import annotations

import time
from pathlib import Path

import click

from mlenv.app import Application


@click.command()
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path))
@click.option("--verify", is_flag=True, help="Only check the bundle in FOLDER against its manifest.")
@click.pass_obj
def bundle(app: Application, folder: Path, verify: bool) -> None:
    """Gather the Debian packages, wheels and image references a converge needs into FOLDER."""
    from rich.table import Table

    from mlenv.bundle import build, manifest, python

    started = time.monotonic()
    if verify:
        found = manifest.verify(folder)
        size = sum(one.size for one in found.files.values())
        made = f"{found.created:%F}"
        app.success(f"{folder}: {len(found.files)} files ({size / 1e6:.0f} MB) match the manifest of {made}")
        return
    made = build.make(folder, app.config, app)
    table = Table(title=f"bundle for Debian {made.distribution} {made.architecture}, Python {made.python}")
    for column in ("part", "files", "MB"):
        table.add_column(column)
    debs = [one.size for name, one in made.files.items() if name.endswith(".deb")]
    wheels = [one.size for name, one in made.files.items() if name.startswith(python.FILES_FOLDER + "/")]
    for part, sizes in (("Debian packages", debs), ("Python distributions", wheels)):
        table.add_row(part, str(len(sizes)), f"{sum(sizes) / 1e6:.0f}")
    table.add_row("container images (references)", str(len(made.images)), "-")
    app.console.print(table)
    total = sum(one.size for one in made.files.values())
    app.success(f"bundle written to {folder} in {time.monotonic() - started:.0f}s ({total / 1e6:.0f} MB)")
    app.info(
        "serve the folder with any web server the hosts reach (e.g. python3 -m http.server), then set "
        "bundle.url in mlenv.yaml to its address"
    )
