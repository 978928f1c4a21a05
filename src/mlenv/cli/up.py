from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from mlenv.app import Application

if TYPE_CHECKING:
    from mlenv.outputs import Outputs


@click.command()
@click.pass_obj
def up(app: Application) -> None:
    """Bring the ML environment up (safe to re-run; resumes after an interruption)."""
    from mlenv import outputs

    started = time.monotonic()
    with app.locked("up"):
        result = app.profile.up()
    app.success(f"converged in {time.monotonic() - started:.0f}s, {result.changed} changes; log: {result.log}")
    show_summary(app, outputs.read(app.state), app.state)


def show_summary(app: Application, outputs: Outputs, state: Path) -> None:
    """The URLs, the CA to trust and where the credentials are, from the outputs Ansible wrote."""
    from rich.table import Table

    from mlenv.outputs import TITLES

    table = Table(title=f"mlenv: {outputs.environment} environment")
    table.add_column("service")
    table.add_column("URL")
    # The landing page first, then the services in their one order.
    for name, endpoint in sorted(outputs.services.items(), key=lambda item: list(TITLES).index(item[0])):
        table.add_row(TITLES.get(name, name), endpoint.url)
    app.console.print(table)
    if outputs.ca_certificate:
        app.info(f"trust this CA in clients: {outputs.ca_certificate}")
    cluster, gitlab = state / "cluster.json", state / "gitlab.json"
    if cluster.is_file():
        found = json.loads(cluster.read_text())
        pools = ", ".join(pool["name"] for pool in found.get("gpu_pools", []))
        app.info(
            f"cluster {found['cluster_name']} ({found['region']}, GPU pools: {pools}): KUBECONFIG="
            + str(state / "secrets" / "kubeconfig")
        )
    if gitlab.is_file():
        found = json.loads(gitlab.read_text())
        app.info(
            f"GitLab group {found['group_path']}: {', '.join(found['projects'].values())}; "
            f"trigger token and runner configs in {state / 'secrets' / 'gitlab'}"
        )
    app.info(f"credentials: `mlenv credentials` (0600 files in {state / 'secrets'})")
    app.info(f"outputs for other tools: {state / 'outputs.json'}")
