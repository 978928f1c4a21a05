from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import click

from mlenv.app import Application
from mlenv.cli.options import host_name_option

SERVICES = {"mlflow": "MLflow", "labels": "Label Studio", "s3": "S3 object store"}


@click.command()
@click.option(
    "--target",
    type=click.Choice(["container", "this-host"]),
    default="container",
    show_default=True,
    envvar="MLENV_TARGET",
    help="Converge into a local systemd container, or into this machine (needs systemd as PID 1).",
)
@host_name_option
@click.option(
    "--https-port",
    type=click.IntRange(1024, 65535),
    default=8443,
    show_default=True,
    envvar="MLENV_HTTPS_PORT",
    help="Port on 127.0.0.1 where the container's proxy is published.",
)
@click.pass_obj
def up(app: Application, target: str, host_name: str, https_port: int) -> None:
    """Bring the local ML environment up (safe to re-run)."""
    from mlenv.hostimage import HostImageError, containers_conf
    from mlenv.localhost import LocalHost, LocalHostError, pid1_is_systemd
    from mlenv.paths import project_root, state_dir
    from mlenv.runners.ansible import LayerProgress, ProgressTracker, run_playbook

    root = project_root()
    state = state_dir()
    state.mkdir(parents=True, exist_ok=True, mode=0o700)
    started = time.monotonic()
    extravars: dict[str, object] = {}

    if target == "this-host":
        if not pid1_is_systemd():
            app.abort("--target this-host needs systemd as PID 1 here; leave --target at 'container'")
        extravars.update(ansible_connection="local", mlenv_public_https_port=443)
        app.info("target: this machine (connection local)")
    else:
        host = LocalHost(root, name=host_name, https_port=https_port)
        app.info(f"target: systemd container host '{host.name}' (HTTPS published on 127.0.0.1:{https_port})")
        try:
            with app.status("preparing the local host (image, container) …"):
                action = host.ensure_running()
        except (HostImageError, LocalHostError) as err:
            app.abort(str(err))
        app.success(f"local host {host.name}: {action}")
        extravars.update(ansible_host=host.name, mlenv_public_https_port=https_port)

    def layer_done(layer: LayerProgress) -> None:
        mark = "[red]✘[/red]" if layer.failed else "[green]✔[/green]"
        app.info(f"{mark} {layer.name:<40} {layer.elapsed:6.1f}s  changed={layer.changed}")

    with app.status("converging …") as spinner:

        def on_task(task: str) -> None:
            if spinner is not None:
                spinner.update(f"converging: {task}")  # type: ignore[attr-defined]

        result = run_playbook(
            root / "ansible/playbooks/site.yml",
            inventory=root / "inventories/local/hosts.yml",
            private_data_dir=state / "ansible-runner",
            envvars={
                "ANSIBLE_CONFIG": str(root / "ansible.cfg"),
                "MLENV_STATE_DIR": str(state),
                "CONTAINERS_CONF": os.environ.get("CONTAINERS_CONF", str(containers_conf(root))),
            },
            extravars=extravars,
            tracker=ProgressTracker(layer_done, on_task),
            verbose=app.verbose,
        )
    if not result.ok:
        app.abort(f"the converge failed ({result.failed} failed tasks); full log: {result.log}")
    app.success(f"converged in {time.monotonic() - started:.0f}s, {result.changed} changes; log: {result.log}")
    show_summary(app, json.loads((state / "outputs.json").read_text()), state)


def show_summary(app: Application, outputs: dict[str, Any], state: Path) -> None:
    """The URLs, the CA to trust and where the credentials are, from the outputs Ansible wrote."""
    from rich.table import Table

    table = Table(title=f"mlenv: {outputs['environment']} environment")
    table.add_column("service")
    table.add_column("URL")
    for name, url in outputs["urls"].items():
        table.add_row(SERVICES.get(name, name), url)
    app.console.print(table)
    if outputs.get("ca_certificate"):
        app.info(f"trust this CA in clients: {outputs['ca_certificate']}")
    app.info(f"credentials (0600 files): {state / 'secrets'}")
    app.info(f"outputs for other tools: {state / 'outputs.json'}")
