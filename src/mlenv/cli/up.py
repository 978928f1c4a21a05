from __future__ import annotations

import os
import time

import click

from mlenv.app import Application


@click.command()
@click.option(
    "--target",
    type=click.Choice(["container", "this-host"]),
    default="container",
    show_default=True,
    envvar="MLENV_TARGET",
    help="Converge into a local systemd container, or into this machine (needs systemd as PID 1).",
)
@click.pass_obj
def up(app: Application, target: str) -> None:
    """Bring the local ML environment up (safe to re-run)."""
    from mlenv.hostimage import HostImageError, containers_conf
    from mlenv.localhost import LocalHost, LocalHostError, pid1_is_systemd
    from mlenv.paths import project_root, state_dir
    from mlenv.runners.ansible import ProgressTracker, RoleProgress, run_playbook

    root = project_root()
    state = state_dir()
    state.mkdir(parents=True, exist_ok=True, mode=0o700)
    started = time.monotonic()
    extravars: dict[str, str] = {}

    if target == "this-host":
        if not pid1_is_systemd():
            app.abort("--target this-host needs systemd as PID 1 here; leave --target at 'container'")
        extravars["ansible_connection"] = "local"
        app.info("target: this machine (connection local)")
    else:
        host = LocalHost(root)
        app.info(f"target: systemd container host '{host.name}' (PID 1 here is not systemd, or container chosen)")
        try:
            with app.status("preparing the local host (image, container) …"):
                action = host.ensure_running()
        except (HostImageError, LocalHostError) as err:
            app.abort(str(err))
        app.success(f"local host {host.name}: {action}")

    def role_done(role: RoleProgress) -> None:
        mark = "[red]✘[/red]" if role.failed else "[green]✔[/green]"
        app.info(f"{mark} {role.name:<40} {role.elapsed:6.1f}s  changed={role.changed}")

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
            tracker=ProgressTracker(role_done, on_task),
            verbose=app.verbose,
        )
    if not result.ok:
        app.abort(f"the converge failed ({result.failed} failed tasks); full log: {result.log}")
    app.success(f"converged in {time.monotonic() - started:.0f}s, {result.changed} changes; log: {result.log}")
    app.info(f"state and credentials: {state} (secrets under {state / 'secrets'}, mode 0600)")
