"""The steps `mlenv up` and `mlenv plan` share: the target host, its connection, the playbook run."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from mlenv.app import Application
from mlenv.config import MlenvConfig
from mlenv.files import write_private
from mlenv.runners.ansible import LayerProgress, PlaybookResult, ProgressTracker, run_playbook, strategy_env
from mlenv.settings import Settings, owned_settings, write_layer

LOCAL_INVENTORY_HOST = "mlenv-local"  # the host's name in inventories/local, whatever the container is called


def local_host(app: Application) -> Any:
    from mlenv.localhost import LocalHost
    from mlenv.paths import project_root

    config = app.config
    return LocalHost(
        project_root(), name=config.local_host_name, https_port=config.tls.https_port, environment=config.environment
    )


def connection_for(app: Application, host: Any) -> dict[str, str]:
    """How Ansible reaches the target: this machine, or the container host over SSH."""
    from mlenv.localhost import ssh_connection

    if app.config.local.target == "this-host":
        return {"ansible_connection": "local"}
    connection = ssh_connection(host, app.state)
    if connection is None:
        app.warning(f"{host.name} publishes no SSH port; converging through Podman (slower)")
        return {"ansible_connection": "containers.podman.podman", "ansible_host": host.name}
    return connection


def local_inventory(app: Application, connection: dict[str, str]) -> list[Path]:
    """inventories/local, with the one host's connection in a file of its own: extra vars would
    also redirect the tasks delegated to the controller."""
    from mlenv.paths import project_root

    hosts = {"all": {"hosts": {LOCAL_INVENTORY_HOST: connection}}}
    return [project_root() / "inventories/local/hosts.yml", write_inventory(app.state / "connection.yml", hosts)]


def converge(
    app: Application, inventory: list[Path], *, extra_settings: Settings | None = None, check: bool = False
) -> PlaybookResult:
    """site.yml on the given inventory below mlenv.yaml's settings layer, one progress line per layer (play)."""
    from mlenv.hostimage import containers_conf
    from mlenv.paths import project_root

    root = project_root()
    config: MlenvConfig = app.config
    public_port = config.tls.https_port if config.profile == "local" and config.local.target == "container" else 443
    settings = owned_settings(config, app.state, public_https_port=public_port, extra=extra_settings)
    # First: the operator's inventory (group_vars, and its own files' `all` vars) comes after it and
    # the boilerplate play names every disagreement.
    sources = [write_layer(app.state, settings), *inventory]

    def layer_done(layer: LayerProgress) -> None:
        mark = "[red]✘[/red]" if layer.failed else "[green]✔[/green]"
        verb = "would change" if check else "changed"
        app.info(f"{mark} {layer.name:<40} {layer.elapsed:6.1f}s  {verb}={layer.changed}")

    with app.status("checking …" if check else "converging …") as spinner:

        def on_task(task: str) -> None:
            if spinner is not None:
                spinner.update(task)  # type: ignore[attr-defined]

        return run_playbook(
            root / "ansible/playbooks/site.yml",
            inventory=sources,
            private_data_dir=app.state / "ansible-runner",
            envvars={
                "ANSIBLE_CONFIG": str(root / "ansible.cfg"),
                "MLENV_STATE_DIR": str(app.state),
                # ansible.cfg relaxes this for throwaway test hosts; mlenv pins the host key.
                "ANSIBLE_HOST_KEY_CHECKING": "True",
                "CONTAINERS_CONF": os.environ.get("CONTAINERS_CONF", str(containers_conf(root))),
                **strategy_env(),
            },
            tracker=ProgressTracker(layer_done, on_task),
            verbose=app.verbose,
            check=check,
        )


def write_inventory(path: Path, inventory: dict[str, Any]) -> Path:
    return write_private(path, yaml.safe_dump(inventory))
