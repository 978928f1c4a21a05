"""The worker's jobs, queued in PostgreSQL by procrastinate.

- `snapshot`: a project's annotations become a dataset version, and the version a run;
- `start_run`: a queued run starts on its runner, once;
- `tick` (every few seconds): snapshots that are due by time, runs that finished, and jobs whose
  worker died (the service killed) put back in the queue;
- `connect` (every half minute): the configured Label Studio projects get the service's webhook.

A job that dies half-way is run again from the start, so each is written to be repeated: a
version is content-addressed, a run is keyed by its version and model, and a run's row is locked
while it starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import procrastinate
from procrastinate.exceptions import AlreadyEnqueued

from mlenv_loop import datasets
from mlenv_loop.labelstudio import LabelStudio, Project
from mlenv_loop.service.config import LoopProject, ServiceConfig
from mlenv_loop.service.runners import Argo, GitLab, RunnerError, Systemd
from mlenv_loop.service.store import Store
from mlenv_loop.webhooks import ACTIONS, SECRET_HEADER, Debounce

log = logging.getLogger("mlenv_loop")
STALLED_AFTER_S = 15  # a worker's heartbeat is every 5 s: three missed beats and its jobs run again
app = procrastinate.App(connector=procrastinate.PsycopgConnector())


@dataclass
class Context:
    config: ServiceConfig
    store: Store
    label_studio: LabelStudio
    datasets: datasets.DatasetStore
    runner: Systemd | GitLab | Argo


_context: Context | None = None


def use(context: Context) -> None:
    global _context
    _context = context


def context() -> Context:
    assert _context is not None, "the service sets the context before the worker starts"
    return _context


async def defer_snapshot(project_id: int, reason: str) -> bool:
    """Queues a snapshot after the quiet time; False when one is queued already (the burst joins it)."""
    quiet = context().config.quiet_seconds
    try:
        await snapshot.configure(queueing_lock=f"snapshot-{project_id}", schedule_in={"seconds": quiet}).defer_async(
            project_id=project_id, reason=reason
        )
    except AlreadyEnqueued:
        return False
    return True


async def due(project_id: int, loop_project: LoopProject, now: datetime | None = None) -> str | None:
    waiting = await context().store.waiting(project_id)
    rule = Debounce(every=loop_project.every, after=timedelta(seconds=loop_project.after_seconds))
    return rule.due(waiting.count, waiting.oldest, now or datetime.now(UTC))


async def loop_project_of(project_id: int) -> LoopProject | None:
    title = await context().store.project_title(project_id)
    return context().config.project_titled(title) if title is not None else None


@app.task(
    name="snapshot", queue="snapshots", pass_context=True, retry=procrastinate.RetryStrategy(max_attempts=5, wait=10)
)
async def snapshot(job_context: procrastinate.JobContext, project_id: int, reason: str) -> str:
    found = context()
    loop_project = await loop_project_of(project_id)
    if loop_project is None:
        return f"project {project_id} is not one the service trains from"
    assert job_context.job.id is not None
    exported = await asyncio.to_thread(found.label_studio.export, project_id)
    try:
        snap = datasets.snapshot(
            Project(id=project_id, title=loop_project.title, label_config=""),
            exported,
            dataset=loop_project.dataset,
            source_url=found.config.label_studio_url,
            holdout_percent=found.config.holdout_percent,
        )
    except datasets.DatasetError as err:
        await found.store.take_events(project_id, job_context.job.id)
        return str(err)
    await asyncio.to_thread(found.datasets.put, snap)
    await found.store.take_events(project_id, job_context.job.id)
    run, created = await found.store.add_run(
        dataset=snap.dataset, version=snap.version, model=loop_project.model, project_id=project_id,
        annotations=snap.manifest["counts"]["annotations"], trigger=reason, runner=found.runner.kind,
    )  # fmt: skip
    if run["state"] == "queued":
        # Also when the run exists: an earlier attempt of this job may have died before queueing it.
        with contextlib.suppress(AlreadyEnqueued):
            await start_run.configure(queueing_lock=f"start-{run['id']}").defer_async(run_id=run["id"])
    outcome = f"version {snap.version}: {'new run' if created else 'run already ' + run['state']} {run['id']}"
    log.info("project %s (%s): %s", project_id, reason, outcome)
    return outcome


@app.task(name="start_run", queue="runs", retry=procrastinate.RetryStrategy(max_attempts=3, wait=5))
async def start_run(run_id: str) -> str:
    found = context()
    try:
        outcome = await found.store.start_once(run_id, found.runner.start)
    except RunnerError as err:
        await found.store.set_state(run_id, "failed", detail=str(err), finished_at=datetime.now(UTC))
        outcome = f"failed to start: {err}"
    log.info("run %s: %s", run_id, outcome)
    return outcome


async def follow_runs() -> None:
    found = context()
    for run in await found.store.runs_in("running"):
        progress = await found.runner.progress(run)
        if progress.state != run["state"]:
            ended = progress.finished_at or datetime.now(UTC)
            await found.store.set_state(run["id"], progress.state, detail=progress.detail, result=progress.result,
                                        finished_at=ended)  # fmt: skip
            log.info("run %s %s %s", run["id"], progress.state, progress.detail)


async def snapshots_due_by_time() -> None:
    for project_id in await context().store.projects_waiting():
        loop_project = await loop_project_of(project_id)
        reason = await due(project_id, loop_project) if loop_project else None
        if reason:
            await defer_snapshot(project_id, reason)


async def requeue_stalled() -> None:
    for job in await app.job_manager.get_stalled_jobs(seconds_since_heartbeat=STALLED_AFTER_S):
        log.warning("job %s (%s) lost its worker; queued again", job.id, job.task_name)
        await app.job_manager.retry_job(job)


@app.periodic(cron="* * * * * */5")
@app.task(name="tick", queue="ticks", queueing_lock="tick")
async def tick(timestamp: int) -> None:
    await requeue_stalled()
    await snapshots_due_by_time()
    await follow_runs()


def webhook_body(config: ServiceConfig, project_id: int) -> dict[str, Any]:
    return {
        "project": project_id,
        "url": config.webhook_url,
        "send_payload": True,
        "send_for_all_actions": False,
        "actions": sorted(ACTIONS),
        "headers": {SECRET_HEADER: config.webhook_secret},
        "is_active": True,
    }


def connect_projects(found: Context) -> list[tuple[int, str, int]]:
    """Each configured project that exists in Label Studio, with the service's webhook on it
    (made when missing, mended when its secret or actions drifted), and the service's webhook on
    no other project. Of several projects with one title, the oldest is the one that trains (a
    title names one project)."""
    connected = []
    titles = {project.title for project in found.config.projects}
    chosen: dict[str, int] = {}
    for project in sorted(found.label_studio.projects(), key=lambda project: project["id"]):
        if project["title"] not in titles:
            continue
        if project["title"] in chosen:
            log.warning("Label Studio project %s has the title %r of project %s, which is the one that trains",
                        project["id"], project["title"], chosen[project["title"]])  # fmt: skip
            continue
        chosen[project["title"]] = project["id"]
        wanted = webhook_body(found.config, project["id"])
        hooks = [hook for hook in found.label_studio.webhooks(project["id"]) if hook.get("url") == wanted["url"]]
        if not hooks:
            hook = found.label_studio.create_webhook(wanted)
        elif any(
            _differs(hooks[0].get(key), wanted[key]) for key in ("headers", "actions", "is_active", "send_payload")
        ):
            hook = found.label_studio.update_webhook(hooks[0]["id"], wanted)
        else:
            hook = hooks[0]
        connected.append((project["id"], project["title"], hook["id"]))
    # A project taken out of the loop (or a second one with a trained title) keeps no webhook of ours.
    trained = set(chosen.values())
    for hook in found.label_studio.webhooks():
        if hook.get("url") == found.config.webhook_url and hook.get("project") not in trained:
            found.label_studio.delete_webhook(hook["id"])
            log.info("removed the service's webhook %s from Label Studio project %s, which it does not train from",
                     hook["id"], hook.get("project"))  # fmt: skip
    return connected


def _differs(found: Any, wanted: Any) -> bool:
    return sorted(found) != sorted(wanted) if isinstance(wanted, list) and isinstance(found, list) else found != wanted


async def connect_now() -> None:
    found = context()
    connected = await asyncio.to_thread(connect_projects, found)
    for project_id, title, webhook_id in connected:
        await found.store.connect_project(project_id, title, webhook_id)
    await found.store.keep_projects([project_id for project_id, _, _ in connected])


@app.periodic(cron="* * * * * */30")
@app.task(name="connect", queue="ticks", queueing_lock="connect")
async def connect(timestamp: int) -> None:
    await connect_now()
