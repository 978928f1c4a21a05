"""`mlenv rotate`: new generated secrets, handed to every consumer; the old ones stop working."""

from __future__ import annotations

import time

import click

from mlenv.app import Application


@click.command()
@click.argument("names", nargs=-1)
@click.option("--list", "list_only", is_flag=True, help="Show what can be rotated; change nothing.")
@click.pass_obj
def rotate(app: Application, names: tuple[str, ...], list_only: bool) -> None:
    """Renew secrets (NAMES: kinds or secrets as `--list` shows them; none: every one) and converge.

    The services, their users and the outputs get the new values; the old ones are refused
    afterwards. An interrupted rotation is finished by running it again."""
    from mlenv import health, outputs, rotation

    secrets = app.state / "secrets"
    if list_only:
        _show(app, rotation.rotatable(secrets) if secrets.is_dir() else [])
        return
    unfinished = rotation.under_way(secrets) if secrets.is_dir() else []
    # Without names, a rotation left unfinished is finished, not widened to every secret.
    picked = rotation.chosen(secrets, names) if names or not unfinished else []
    started = time.monotonic()
    with app.locked("rotate"):
        if unfinished:
            app.info(f"finishing the rotation of {len(unfinished)} secret(s) started before")
        rotation.set_aside(secrets, picked)
        if picked:
            app.info(f"rotating {len(picked)} secret(s): {', '.join(picked)}")
        result = app.profile.up()
        down = health.wait_until_up(outputs.read(app.state), app.state, app.profile.status_address, timeout_s=300)
        if down:
            app.abort(
                f"converged, but down after 300 s: {', '.join(down)}; the previous values are kept "
                f"(*.previous in {secrets}): run `mlenv rotate` again once mended"
            )
        done = rotation.finish(secrets)
    app.success(
        f"rotated {len(done)} secret(s) in {time.monotonic() - started:.0f}s ({result.changed} changes); "
        "every service answers with the new values; log: " + str(result.log)
    )


def _show(app: Application, names: list[str]) -> None:
    from rich.table import Table

    from mlenv import rotation

    table = Table(title="secrets mlenv rotate renews")
    table.add_column("kind")
    table.add_column("secret (in the state's secrets/)")
    table.add_column("what")
    # Every rotatable secret has a kind; the rows go kind by kind, in the order of KINDS.
    kinds = {name: rotation.kind_of(name) for name in names}
    for name in sorted(names, key=lambda name: (rotation.KINDS.index(kinds[name]), name)):  # type: ignore[arg-type]
        kind = kinds[name]
        table.add_row(kind.name if kind else "", name, kind.what if kind else "")
    app.console.print(table)
