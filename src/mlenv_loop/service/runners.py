"""Where a run trains: a unit on this host (systemd), or the training project's GitLab pipeline.

The systemd runner starts one instance of a template unit per run, named after the run. The role
writes that template (its own user, limits, sandboxing, only the training identity's secrets) and
a polkit rule that lets the service start instances of it and nothing else; transient units
(systemd-run) cannot be limited to a name that way, so the template is what keeps the service
from starting arbitrary commands as root.
"""

from __future__ import annotations

import asyncio
import json
import os
import ssl
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from mlenv_loop.errors import LoopError
from mlenv_loop.service.config import ArgoRunner, GitLabRunner, SystemdRunner

SHOW = ("InvocationID", "ActiveState", "SubState", "Result", "ExecMainStatus", "ExecMainExitTimestamp")
LOG_LINES = 200


class RunnerError(LoopError):
    """The runner could not start or read a run; the message says what it answered."""


@dataclass(frozen=True)
class Progress:
    state: str  # running, succeeded or failed
    detail: str = ""
    result: dict[str, Any] | None = None
    finished_at: datetime | None = None


def timestamp(shown: str) -> datetime | None:
    """systemd's `Wed 2026-12-02 05:23:16 UTC` (empty or `n/a` when there is none)."""
    try:
        return datetime.strptime(shown, "%a %Y-%m-%d %H:%M:%S %Z").replace(tzinfo=UTC)
    except ValueError:
        return None


def parse_show(text: str) -> dict[str, str]:
    """`systemctl show -p …` output: one KEY=value a line."""
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def progress_of(unit: dict[str, str]) -> Progress:
    """What a run's unit says of it (Type=oneshot with RemainAfterExit: a finished unit stays
    `active` when it succeeded and `failed` when it did not, until the host restarts)."""
    if not unit.get("InvocationID"):
        return Progress("failed", "the unit is gone: the host restarted, or it never started")
    active, ended = unit.get("ActiveState", ""), timestamp(unit.get("ExecMainExitTimestamp", ""))
    if active == "failed":
        detail = f"{unit.get('Result', 'failed')}, exit status {unit.get('ExecMainStatus', '?')}"
        return Progress("failed", detail, finished_at=ended)
    if active == "active" and unit.get("SubState") == "exited" and unit.get("Result") == "success":
        return Progress("succeeded", finished_at=ended)
    return Progress("running", f"{active}/{unit.get('SubState', '')}")


async def _command(*argv: str) -> str:
    process = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await process.communicate()
    if process.returncode != 0:
        raise RunnerError(f"{' '.join(argv[:3])} failed ({process.returncode}): {err.decode(errors='replace').strip()}")
    return out.decode()


class Systemd:
    kind = "systemd"

    def __init__(self, settings: SystemdRunner) -> None:
        self.settings = settings

    def unit(self, run_id: str) -> str:
        return f"{self.settings.unit}@{run_id}.service"

    async def _show(self, run_id: str) -> dict[str, str]:
        return parse_show(await _command("systemctl", "show", "--property", ",".join(SHOW), self.unit(run_id)))

    async def start(self, run: dict[str, Any]) -> str:
        """Writes the run's parameters, then starts its unit, unless an earlier start got that far."""
        unit = self.unit(run["id"])
        if (await self._show(run["id"])).get("InvocationID"):
            return unit
        job = {key: run[key] for key in ("id", "dataset", "version", "model", "trigger")}
        path = self.settings.runs_dir / f"{run['id']}.json"
        partial = path.with_suffix(".partial")
        # Readable by the training user's group; written whole, then renamed, so a unit never reads half.
        descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
        os.fchmod(descriptor, 0o640)  # the service's umask is 077
        with os.fdopen(descriptor, "w") as handle:
            json.dump(job, handle)
        partial.replace(path)
        await _command("systemctl", "start", "--no-block", "--no-ask-password", unit)
        return unit

    async def progress(self, run: dict[str, Any]) -> Progress:
        found = progress_of(await self._show(run["id"]))
        if found.state != "succeeded":
            return found
        summary = self.settings.results_dir / run["id"] / "result.json"
        try:
            return Progress("succeeded", result=json.loads(summary.read_text()), finished_at=found.finished_at)
        except (OSError, json.JSONDecodeError) as err:
            return Progress("failed", f"the run ended without its result file ({err})", finished_at=found.finished_at)

    async def log(self, run: dict[str, Any]) -> str:
        return await _command(
            "journalctl", "--unit", self.unit(run["id"]), "--output", "cat", "--no-pager", "--lines", str(LOG_LINES)
        )

    def log_location(self, run: dict[str, Any]) -> str:
        return f"journalctl -u {self.unit(run['id'])}"


def trigger_form(settings: GitLabRunner, run: dict[str, Any]) -> dict[str, str]:
    """GitLab's pipeline trigger API: the token, the ref and the pipeline's variables."""
    return {
        "token": settings.token,
        "ref": settings.ref,
        "variables[DATASET_VERSION]": f"{run['dataset']}@{run['version']}",
        "variables[MODEL_NAME]": run["model"],
        "variables[TRIGGER]": run["trigger"],
        "variables[MLENV_RUN_ID]": run["id"],
    }


class GitLab:
    kind = "gitlab"

    def __init__(self, settings: GitLabRunner) -> None:
        self.settings = settings

    def _trigger(self, run: dict[str, Any]) -> dict[str, Any]:
        project = urllib.parse.quote(self.settings.project, safe="")
        request = urllib.request.Request(  # noqa: S310 (the URL is checked as http(s) in the settings)
            f"{self.settings.url}/api/v4/projects/{project}/trigger/pipeline",
            data=urllib.parse.urlencode(trigger_form(self.settings, run)).encode(),
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
                return json.loads(response.read())
        except urllib.error.HTTPError as err:
            detail = err.read().decode(errors="replace")[:300]
            raise RunnerError(f"GitLab answered {err.code} to the pipeline trigger: {detail}") from None
        except (OSError, json.JSONDecodeError) as err:
            raise RunnerError(f"GitLab's pipeline trigger at {self.settings.url} failed: {err}") from None

    async def start(self, run: dict[str, Any]) -> str:
        if not self.settings.token:
            raise RunnerError(
                "no pipeline trigger token yet: `mlenv up` gives it to the service once it has made the GitLab space"
            )
        pipeline = await asyncio.to_thread(self._trigger, run)
        return str(pipeline.get("web_url") or f"pipeline {pipeline.get('id')}")

    async def progress(self, run: dict[str, Any]) -> Progress:
        # A trigger token can start pipelines, not read them: GitLab shows how it went.
        return Progress("running", "follow the pipeline in GitLab")

    async def log(self, run: dict[str, Any]) -> str:
        return f"the pipeline's log is in GitLab: {run['handle']}\n"

    def log_location(self, run: dict[str, Any]) -> str:
        return run["handle"]


ARGO_PHASES = {"Succeeded": "succeeded", "Failed": "failed", "Error": "failed"}


def workflow(settings: ArgoRunner, run: dict[str, Any]) -> dict[str, Any]:
    """The run as an Argo Workflow of the role's template, named after the run: a second submission
    of the same run is refused by Kubernetes (409), so it never trains twice."""
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {
            "name": run["id"],
            "namespace": settings.namespace,
            "labels": {"app.kubernetes.io/part-of": "mlenv", "mlenv.io/run": run["id"]},
        },
        "spec": {
            "workflowTemplateRef": {"name": settings.template},
            "arguments": {
                "parameters": [
                    {"name": "dataset-version", "value": f"{run['dataset']}@{run['version']}"},
                    {"name": "model-name", "value": run["model"]},
                    {"name": "trigger", "value": run["trigger"]},
                ]
            },
        },
    }


class Argo:
    kind = "argo"

    def __init__(self, settings: ArgoRunner) -> None:
        self.settings = settings
        self._context = ssl.create_default_context(cafile=settings.ca_file or None)

    def _call(self, method: str, path: str, body: object = None) -> tuple[int, dict[str, Any]]:
        request = urllib.request.Request(  # noqa: S310 (the URL is checked as http(s) in the settings)
            f"{self.settings.api_url}/apis/argoproj.io/v1alpha1/namespaces/{self.settings.namespace}/workflows{path}",
            data=None if body is None else json.dumps(body).encode(),
            method=method,
            headers={"Authorization": f"Bearer {self.settings.token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=30, context=self._context) as response:  # noqa: S310
                return response.status, json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read() or b"{}")
        except (OSError, json.JSONDecodeError) as err:
            raise RunnerError(f"the Kubernetes API at {self.settings.api_url} failed: {err}") from None

    async def start(self, run: dict[str, Any]) -> str:
        if not self.settings.token:
            raise RunnerError(
                "no Kubernetes token yet: `mlenv up` gives the service its account's token once the cluster has it"
            )
        status, answer = await asyncio.to_thread(self._call, "POST", "", workflow(self.settings, run))
        if status not in {200, 201, 409}:  # 409: submitted before (the service was killed after it)
            raise RunnerError(f"Kubernetes answered {status} to the Workflow: {answer.get('message', answer)}")
        return f"workflow {self.settings.namespace}/{run['id']}"

    async def progress(self, run: dict[str, Any]) -> Progress:
        status, answer = await asyncio.to_thread(self._call, "GET", f"/{run['id']}")
        if status == 404:
            return Progress("failed", "the Workflow is gone")
        if status != 200:
            return Progress("running", f"Kubernetes answered {status}")
        phase = (answer.get("status") or {}).get("phase", "Pending")
        state = ARGO_PHASES.get(phase, "running")
        ended = (answer.get("status") or {}).get("finishedAt")
        finished = datetime.fromisoformat(ended.replace("Z", "+00:00")) if ended else None
        return Progress(state, f"{phase}: {(answer.get('status') or {}).get('message', '')}".rstrip(": "),
                        finished_at=finished)  # fmt: skip

    async def log(self, run: dict[str, Any]) -> str:
        return f"argo logs -n {self.settings.namespace} {run['id']}\n"

    def log_location(self, run: dict[str, Any]) -> str:
        return f"argo logs -n {self.settings.namespace} {run['id']}"


def runner_for(settings: SystemdRunner | GitLabRunner | ArgoRunner) -> Systemd | GitLab | Argo:
    if isinstance(settings, SystemdRunner):
        return Systemd(settings)
    return GitLab(settings) if isinstance(settings, GitLabRunner) else Argo(settings)
