"""Run a playbook through ansible-runner and report progress per play."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlenv.files import write_private


@dataclass
class LayerProgress:
    name: str
    started: float = field(default_factory=time.monotonic)
    changed: int = 0
    failed: int = 0

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started


@dataclass
class PlaybookResult:
    status: str
    rc: int
    changed: int
    failed: int
    log: Path
    layers: list[LayerProgress]
    # The first task that failed (or host that could not be reached) and what it said, in Ansible's own
    # words (a hidden result stays hidden): the cause. What fails after it mostly follows from it (a
    # later play reading what the failed one would have set), so it is only counted.
    first_failure: str = ""
    later_failures: int = 0

    @property
    def ok(self) -> bool:
        return self.status == "successful" and self.rc == 0


class ProgressTracker:
    """Turns ansible-runner events into one finished line per play (one service layer of
    site.yml, helper roles included) and the current task."""

    def __init__(self, on_layer_done: Callable[[LayerProgress], None], on_task: Callable[[str], None]) -> None:
        self.layers: list[LayerProgress] = []
        self.first_failure = ""
        self.later_failures = 0
        self._on_layer_done = on_layer_done
        self._on_task = on_task

    def _current(self, play: str) -> LayerProgress:
        if not self.layers or self.layers[-1].name != play:
            if self.layers:
                self._on_layer_done(self.layers[-1])
            self.layers.append(LayerProgress(play))
        return self.layers[-1]

    def handle(self, event: dict[str, Any]) -> bool:
        data = event.get("event_data", {})
        kind = event.get("event")
        if kind == "playbook_on_task_start":
            play = data.get("play") or "playbook"
            self._current(play)
            self._on_task(f"{play}: {data.get('task', '')}")
        elif kind in {"runner_on_ok", "runner_on_failed", "runner_on_unreachable"} and self.layers:
            result = data.get("res", {})
            if kind == "runner_on_unreachable" or (kind == "runner_on_failed" and not data.get("ignore_errors")):
                self.layers[-1].failed += 1
                self._failed(kind, data, result)
            elif result.get("changed"):
                self.layers[-1].changed += 1
        return True

    def _failed(self, kind: str, data: dict[str, Any], result: dict[str, Any]) -> None:
        if self.first_failure:
            self.later_failures += 1
            return
        host = data.get("host", "")
        if kind == "runner_on_unreachable":
            self.first_failure = f"{host} could not be reached: {result.get('msg', '')}".strip(": ")
        else:
            said = f"{data.get('task', '')}: {result.get('msg', '')}".strip(": ")
            self.first_failure = f"{host}: {said}" if host and said else said

    def finish(self) -> None:
        if self.layers:
            self._on_layer_done(self.layers[-1])


def strategy_env() -> dict[str, str]:
    """Mitogen's strategy when it is installed (MLENV_ANSIBLE_STRATEGY=linear turns it off).

    It keeps one Python interpreter per host instead of starting one per task: measured on the
    local stack's no-op converge over SSH, about half the time. ansible-core marks third-party
    strategies as deprecated, so Ansible's own linear strategy stays the fallback.
    """
    import importlib.util
    import os

    wanted = os.environ.get("MLENV_ANSIBLE_STRATEGY", "mitogen_linear")
    spec = importlib.util.find_spec("ansible_mitogen")
    if wanted != "mitogen_linear" or spec is None or not spec.submodule_search_locations:
        return {"ANSIBLE_STRATEGY": "linear" if wanted == "mitogen_linear" else wanted}
    plugins = Path(next(iter(spec.submodule_search_locations))) / "plugins" / "strategy"
    return {"ANSIBLE_STRATEGY_PLUGINS": str(plugins), "ANSIBLE_STRATEGY": "mitogen_linear"}


RUNS_FOLDER = "ansible-runner"


def seal_artifacts(private_data_dir: Path) -> None:
    """ansible-runner writes the whole environment of a run (GITLAB_TOKEN, AWS_*, PULUMI_* when the operator
    set them) into the run's `command` file, keeps the last runs, and leaves its logs readable by all (in a
    private folder): keep the command and the variables' names only, and every file 0600. Every run's, so that
    one killed before it could be sealed is sealed by the next."""
    for command in private_data_dir.glob("artifacts/*/command"):
        kept = json.loads(command.read_text())
        if isinstance(kept.get("env"), dict):
            kept["env"] = sorted(kept["env"])
            write_private(command, json.dumps(kept))
    for path in private_data_dir.rglob("*"):
        path.chmod(0o700 if path.is_dir() else 0o600)


def forget_runs(state: Path) -> None:
    """Every run's artifacts (logs of a host that `down --purge` removed)."""
    shutil.rmtree(state / RUNS_FOLDER, ignore_errors=True)


def run_playbook(
    playbook: Path,
    *,
    inventory: Path | list[Path],
    private_data_dir: Path,
    envvars: dict[str, str],
    extravars: dict[str, Any] | None = None,
    tracker: ProgressTracker | None = None,
    verbose: bool = False,
    check: bool = False,
) -> PlaybookResult:
    import os
    import sys

    import ansible_runner  # heavy: imported only when a playbook runs

    private_data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    # ansible-runner keeps what an earlier run passed in env/ and reads it again: a stale
    # value (a connection variable, say) would silently win over this run's.
    for leftover in ("extravars", "envvars", "cmdline"):
        (private_data_dir / "env" / leftover).unlink(missing_ok=True)
    cmdline = "--check --diff" if check else ""
    runner = ansible_runner.run(
        private_data_dir=str(private_data_dir),
        playbook=str(playbook),
        inventory=[str(path) for path in inventory] if isinstance(inventory, list) else str(inventory),
        # The venv's ansible-playbook, also when `mlenv` is started by path without activating it.
        envvars={"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}", **envvars},
        extravars=extravars or {},
        cmdline=cmdline,
        quiet=not verbose,
        event_handler=tracker.handle if tracker else None,
        rotate_artifacts=10,
        # No copy of this run's environment and variables left in env/ for a later run to read.
        suppress_env_files=True,
    )
    seal_artifacts(private_data_dir)
    if tracker:
        tracker.finish()
    stats = runner.stats or {}
    log = Path(runner.config.artifact_dir) / "stdout"
    return PlaybookResult(
        status=runner.status,
        rc=runner.rc,
        changed=sum((stats.get("changed") or {}).values()),
        failed=sum((stats.get("failures") or {}).values()) + sum((stats.get("dark") or {}).values()),
        log=log,
        layers=tracker.layers if tracker else [],
        first_failure=tracker.first_failure if tracker else "",
        later_failures=tracker.later_failures if tracker else 0,
    )
