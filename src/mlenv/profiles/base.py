"""What every profile does, and the steps they share (preflight, converge).

A profile knows its targets: how to check them before anything changes, bring them up, show
what would change, and tear them down. The CLI's commands call these and nothing else, so no
command asks which profile it runs.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

from mlenv import inputs, preflight
from mlenv.config import MlenvConfig
from mlenv.errors import UserError
from mlenv.files import write_private
from mlenv.reporting import Reporter
from mlenv.runners.ansible import (
    RUNS_FOLDER,
    LayerProgress,
    PlaybookResult,
    ProgressTracker,
    run_playbook,
    strategy_env,
)
from mlenv.settings import Settings, owned_settings, write_layer

# Asks the user to type a name and returns what was typed (the CLI prompts).
Confirm = Callable[[str], str]


@dataclass(frozen=True)
class Run:
    """What every step of a profile gets: the configuration, its state folder, where progress goes."""

    config: MlenvConfig
    state: Path
    report: Reporter

    @property
    def secrets(self) -> Path:
        return self.state / "secrets"


class Profile(ABC):
    # Where `status` reaches the proxy: None is by DNS; the local profiles publish on loopback.
    status_address: str | None = None

    def __init__(self, run: Run) -> None:
        self.run = run

    @abstractmethod
    def up(self) -> PlaybookResult:
        """Preflight, then make the targets and converge them; safe to re-run."""

    @abstractmethod
    def plan(self) -> None:
        """Say what `up` would change, changing nothing."""

    @abstractmethod
    def down(self, *, purge: bool, confirm: Confirm) -> str:
        """Stop (or with purge remove) what `up` made; returns what was done."""

    @abstractmethod
    def operate(self, playbook: str, extravars: dict[str, object]) -> PlaybookResult:
        """A day-2 playbook (backup.yml, restore.yml) on the hosts `up` converged, with its arguments."""

    def check(self, findings: list[preflight.Finding]) -> None:
        """Every failed check with its fix, then stop before anything changed."""
        failed = [finding for finding in findings if not finding.ok]
        for finding in failed:
            self.run.report.error(f"preflight: {finding.check}: {finding.detail} → {finding.fix}")
        if failed:
            raise UserError(f"{len(failed)} preflight check(s) failed; nothing was changed")

    def confirmed(self, confirm: Confirm, question: str, expected: str) -> None:
        if confirm(f"{question}. Type '{expected}' to confirm") != expected:
            raise UserError("not confirmed; nothing removed")


def converge(
    run: Run,
    inventory: list[Path],
    *,
    public_https_port: int,
    extra_settings: Settings | None = None,
    check: bool = False,
    playbook: str = "site.yml",
    extravars: dict[str, object] | None = None,
) -> PlaybookResult:
    """A playbook (site.yml unless told) on the inventory, below mlenv.yaml's settings layer; one
    progress line per play. `extravars` are the run's arguments (a folder), never settings."""
    from mlenv.hostimage import containers_conf
    from mlenv.paths import project_root

    root, report = project_root(), run.report
    settings = owned_settings(run.config, run.state, public_https_port=public_https_port, extra=extra_settings)
    # First: the operator's inventory (its group_vars, and its files' `all` vars) comes after it, and
    # the boilerplate play names every disagreement.
    sources = [write_layer(run.state, settings), *inventory]
    # A real run whose inputs passed the up-front checks last time skips that pass (mlenv/inputs.py);
    # only site.yml has that pass.
    found = None if check or playbook != "site.yml" else inputs.digest(root, sources)
    if found is not None and inputs.checked_before(run.state, found):
        sources.append(inputs.marker_layer(run.state))

    def layer_done(layer: LayerProgress) -> None:
        mark = "[red]✘[/red]" if layer.failed else "[green]✔[/green]"
        verb = "would change" if check else "changed"
        report.info(f"{mark} {layer.name:<40} {layer.elapsed:6.1f}s  {verb}={layer.changed}")

    doing = "checking" if check else "converging" if playbook == "site.yml" else f"running {playbook}"
    with report.status(f"{doing} …") as spinner:

        def on_task(task: str) -> None:
            if spinner is not None:
                spinner.update(task)  # type: ignore[attr-defined]

        result = run_playbook(
            root / "ansible/playbooks" / playbook,
            inventory=sources,
            private_data_dir=run.state / RUNS_FOLDER,
            envvars={
                "ANSIBLE_CONFIG": str(root / "ansible.cfg"),
                "MLENV_STATE_DIR": str(run.state),
                # ansible.cfg relaxes this for throwaway test hosts; mlenv pins the host key.
                "ANSIBLE_HOST_KEY_CHECKING": "True",
                "CONTAINERS_CONF": os.environ.get("CONTAINERS_CONF", str(containers_conf(root))),
                **strategy_env(),
            },
            extravars=extravars,
            tracker=ProgressTracker(layer_done, on_task),
            verbose=report.verbose,
            check=check,
        )
    if not result.ok:
        what = "check" if check else "converge" if playbook == "site.yml" else playbook
        said = f": {result.first_failure}" if result.first_failure else ""
        if result.later_failures:
            said += f" ({result.later_failures} later failures follow from it)"
        raise UserError(f"the {what} failed ({result.failed} failed tasks){said}; full log: {result.log}")
    if found is not None:
        inputs.remember(run.state, found)
    return result


def write_inventory(path: Path, inventory: dict[str, object]) -> Path:
    return write_private(path, yaml.safe_dump(inventory))
