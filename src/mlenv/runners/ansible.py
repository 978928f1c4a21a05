"""Run a playbook through ansible-runner and report progress per role."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class RoleProgress:
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
    roles: list[RoleProgress]

    @property
    def ok(self) -> bool:
        return self.status == "successful" and self.rc == 0


class ProgressTracker:
    """Turns ansible-runner events into one finished line per role and the current task."""

    def __init__(self, on_role_done: Callable[[RoleProgress], None], on_task: Callable[[str], None]) -> None:
        self.roles: list[RoleProgress] = []
        self._on_role_done = on_role_done
        self._on_task = on_task

    def _current(self, role: str) -> RoleProgress:
        if not self.roles or self.roles[-1].name != role:
            if self.roles:
                self._on_role_done(self.roles[-1])
            self.roles.append(RoleProgress(role))
        return self.roles[-1]

    def handle(self, event: dict[str, Any]) -> bool:
        data = event.get("event_data", {})
        kind = event.get("event")
        if kind == "playbook_on_task_start":
            role = data.get("role") or data.get("play") or "playbook"
            self._current(role)
            self._on_task(f"{role}: {data.get('task', '')}")
        elif kind in {"runner_on_ok", "runner_on_failed"} and self.roles:
            result = data.get("res", {})
            if kind == "runner_on_failed" and not data.get("ignore_errors"):
                self.roles[-1].failed += 1
            elif result.get("changed"):
                self.roles[-1].changed += 1
        return True

    def finish(self) -> None:
        if self.roles:
            self._on_role_done(self.roles[-1])


def run_playbook(
    playbook: Path,
    *,
    inventory: Path,
    private_data_dir: Path,
    envvars: dict[str, str],
    extravars: dict[str, Any] | None = None,
    tracker: ProgressTracker | None = None,
    verbose: bool = False,
    check: bool = False,
) -> PlaybookResult:
    import ansible_runner  # heavy: imported only when a playbook runs

    private_data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    cmdline = "--check --diff" if check else ""
    runner = ansible_runner.run(
        private_data_dir=str(private_data_dir),
        playbook=str(playbook),
        inventory=str(inventory),
        envvars=envvars,
        extravars=extravars or {},
        cmdline=cmdline,
        quiet=not verbose,
        event_handler=tracker.handle if tracker else None,
        rotate_artifacts=10,
    )
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
        roles=tracker.roles if tracker else [],
    )
