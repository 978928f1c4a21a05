from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from mlenv.app import Application

if TYPE_CHECKING:
    from mlenv.outputs import Outputs
    from mlenv.runners.ansible import PlaybookResult


@click.command()
@click.pass_obj
def up(app: Application) -> None:
    """Bring the ML environment up (safe to re-run; resumes after an interruption)."""
    import shutil

    from mlenv.localhost import pid1_is_systemd
    from mlenv.orchestrate import connection_for, converge, local_host, local_inventory

    config = app.config
    started = time.monotonic()
    if config.profile == "cloud":
        from mlenv import cloud

        with app.locked("up"):
            run_preflight(app, host_exists=False, port_owned=False)
            (app.state / "secrets").mkdir(parents=True, exist_ok=True, mode=0o700)
            app.info(f"target: the hosts of {config.cloud.inventory} and a {config.cloud.cluster.provider} cluster")
            result = cloud.up(app)
        finish(app, result, started)
        return
    with app.locked("up"):
        host = local_host(app)
        if config.local.target == "this-host":
            if not pid1_is_systemd():
                app.abort("local.target this-host needs systemd as PID 1 here; use target: container")
            run_preflight(app, host_exists=True, port_owned=True)
            app.info("target: this machine (connection local)")
        else:
            # Without podman the preflight says how to install it; nothing is asked of podman before.
            state = host.state() if shutil.which("podman") else "missing"
            run_preflight(app, host_exists=state != "missing", port_owned=state != "missing")
        (app.state / "secrets").mkdir(parents=True, exist_ok=True, mode=0o700)
        if config.local.target != "this-host":
            app.info(f"target: systemd container host '{host.name}' (HTTPS on 127.0.0.1:{host.https_port})")
            with app.status("preparing the local host (image, container) …"):
                action = host.ensure_running()
            app.success(f"local host {host.name}: {action}")
        connection = connection_for(app, host)
        if connection.get("ansible_connection") == "ssh":
            app.info(f"connection: SSH on 127.0.0.1:{connection['ansible_port']}, host key pinned")
        result = converge(app, local_inventory(app, connection))
    finish(app, result, started)


def finish(app: Application, result: PlaybookResult, started: float) -> None:
    if not result.ok:
        app.abort(f"the converge failed ({result.failed} failed tasks); full log: {result.log}")
    app.success(f"converged in {time.monotonic() - started:.0f}s, {result.changed} changes; log: {result.log}")
    from mlenv import outputs

    show_summary(app, outputs.read(app.state), app.state)


def run_preflight(app: Application, *, host_exists: bool, port_owned: bool) -> None:
    from mlenv import preflight

    failed = [f for f in preflight.run(app.config, host_exists=host_exists, port_owned=port_owned) if not f.ok]
    for finding in failed:
        app.error(f"preflight: {finding.check}: {finding.detail} → {finding.fix}")
    if failed:
        app.abort(f"{len(failed)} preflight check(s) failed; nothing was changed")


def show_summary(app: Application, outputs: Outputs, state: Path) -> None:
    """The URLs, the CA to trust and where the credentials are, from the outputs Ansible wrote."""
    from rich.table import Table

    from mlenv.outputs import TITLES

    table = Table(title=f"mlenv: {outputs.environment} environment")
    table.add_column("service")
    table.add_column("URL")
    for name, endpoint in outputs.services.items():
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
