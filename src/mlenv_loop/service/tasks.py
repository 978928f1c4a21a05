"""The worker's jobs, queued in PostgreSQL by procrastinate.

- `snapshot`: a project's annotations become a dataset version, and the version a run;
- `start_run`: a queued run starts on its runner, once;
- `tick` (every few seconds): snapshots that are due by time, runs that finished, and jobs whose
  worker died (the service killed) put back in the queue;
- `connect` (every half minute): the configured Label Studio projects get the service's webhook,
  and those with assisted labelling the service as their ML backend;
- `record_groups`: each task the ML backend answered for gets its group and model version in its meta;
- `live_accuracy`: human labels paired with the predictions made for the same input give each model
  version's live accuracy, logged on its run in MLflow; production's below the project's threshold
  (over its latest pairs) retrains, once per version.

Beside "N new annotations", `tick` also fires the other triggers, each once for its subject: a
dataset version tagged `stable` trains (that version), and a schedule snapshots the project.

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

from mlenv_loop import assist, datasets
from mlenv_loop.labelstudio import LabelStudio, LabelStudioError, Project
from mlenv_loop.registry import Registry, RegistryError
from mlenv_loop.service.config import ML_BACKEND_USER, LoopProject, ServiceConfig
from mlenv_loop.service.runners import Argo, GitLab, RunnerError, Systemd
from mlenv_loop.service.store import Store
from mlenv_loop.webhooks import ACTIONS, SECRET_HEADER, Debounce, Labelled

log = logging.getLogger("mlenv_loop")
# The ML backend's title in Label Studio; the project's model_version names it, so that Label
# Studio asks it for suggestions when a task is opened.
ML_BACKEND_TITLE = "mlenv"
STABLE_TAG = "stable"
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


async def stable_versions_due() -> None:
    """A version tagged `stable` trains, once: its run is keyed by the version like any other."""
    found = context()
    for loop_project in found.config.projects:
        project_id = await found.store.project_id_titled(loop_project.title)
        if project_id is None:
            continue
        version = await asyncio.to_thread(found.datasets.tagged, loop_project.dataset, STABLE_TAG)
        fired = {(one["kind"], one["subject"]) for one in await found.store.triggers(project_id)}
        if version is None or ("stable", version) in fired:
            continue
        manifest = await asyncio.to_thread(found.datasets.manifest_of, loop_project.dataset, version)
        reason = f"dataset version {version} tagged {STABLE_TAG}"
        if manifest is not None:
            await queue_run(loop_project, project_id, version, manifest["counts"]["annotations"], reason)
        else:
            log.warning("%s: the tag %s names version %s, which is not there",
                        loop_project.dataset, STABLE_TAG, version)  # fmt: skip
        await found.store.fire_once(project_id, "stable", version, reason)


async def queue_run(loop_project: LoopProject, project_id: int, version: str, annotations: int, reason: str) -> None:
    found = context()
    run, created = await found.store.add_run(
        dataset=loop_project.dataset, version=version, model=loop_project.model, project_id=project_id,
        annotations=annotations, trigger=reason, runner=found.runner.kind,
    )  # fmt: skip
    if run["state"] == "queued":
        with contextlib.suppress(AlreadyEnqueued):
            await start_run.configure(queueing_lock=f"start-{run['id']}").defer_async(run_id=run["id"])
    outcome = "new run " + run["id"] if created else "run already " + run["state"]
    log.info("project %s (%s): %s", project_id, reason, outcome)


async def schedules_due(now: datetime) -> None:
    """A project on a schedule is snapshotted once per period (a version already trained trains no more)."""
    found = context()
    for loop_project in found.config.projects:
        if not loop_project.retrain_every_hours:
            continue
        project_id = await found.store.project_id_titled(loop_project.title)
        period = int(now.timestamp() // (loop_project.retrain_every_hours * 3600))
        reason = f"scheduled (every {loop_project.retrain_every_hours} h)"
        if project_id is not None and await found.store.fire_once(project_id, "schedule", str(period), reason):
            await defer_snapshot(project_id, reason)


async def pair_labels(project_id: int, labelled: tuple[Labelled, ...]) -> None:
    """Each human label with the prediction made for its input; the live accuracy follows in a job."""
    loop_project = await loop_project_of(project_id)
    if loop_project is None:
        return
    paired = 0
    for one in labelled:
        labels = datasets.labels_of(one.result)
        reference = assist.input_reference(one.data)
        if labels and await context().store.pair_label(project_id, loop_project.model, one.annotation_id,
                                                       reference, labels[0]):  # fmt: skip
            paired += 1
    if paired:
        with contextlib.suppress(AlreadyEnqueued):
            await live_accuracy.configure(queueing_lock=f"live-{project_id}").defer_async(project_id=project_id)


def live_figures(row: dict[str, Any], window: int) -> tuple[dict[str, float], float | None, str]:
    """A model version's live metrics, and its accuracy over the window (None while the window is
    not full) with what the window holds: the pairs not shown to annotators when there are enough."""
    metrics = {"live_accuracy": row["correct"] / row["pairs"], "live_pairs": float(row["pairs"])}
    if row["unshown"]:
        metrics["live_accuracy_unassisted"] = row["unshown_correct"] / row["unshown"]
    if row["window_unshown"] >= window:
        return metrics, row["window_unshown_correct"] / row["window_unshown"], "not shown to the annotators"
    if row["window_all"] >= window:
        return metrics, row["window_all_correct"] / row["window_all"], "shown or not"
    return metrics, None, ""


@app.task(name="live_accuracy", queue="labels", retry=procrastinate.RetryStrategy(max_attempts=5, wait=5))
async def live_accuracy(project_id: int) -> str:
    found = context()
    loop_project = await loop_project_of(project_id)
    if loop_project is None:
        return f"project {project_id} is not one the service trains from"
    rows = await found.store.live_accuracy(project_id, loop_project.live_window)
    settings = found.config.mlflow
    registry = Registry(settings.url, settings.username, settings.password)
    said = []
    for index, row in enumerate(rows):
        metrics, windowed, holds = live_figures(row, loop_project.live_window)
        if windowed is not None:
            metrics["live_accuracy_window"] = windowed
        try:
            run_id = (await asyncio.to_thread(registry.version, row["model"], row["model_version"])).run_id
            await asyncio.to_thread(registry.log_batch, run_id, metrics, {}, int(row["pairs"]))
        except RegistryError as err:
            log.warning("live accuracy of %s v%s not logged: %s", row["model"], row["model_version"], err)
        said.append(f"v{row['model_version']} {metrics['live_accuracy']:.3f} over {row['pairs']}")
        # The newest version predictions were made with is the one in production.
        threshold = loop_project.retrain_below
        if index == 0 and windowed is not None and threshold is not None and windowed < threshold:
            reason = (f"live accuracy of {row['model']} v{row['model_version']} {windowed:.2f} < {threshold} over "
                      f"its latest {loop_project.live_window} labelled predictions ({holds})")  # fmt: skip
            if await found.store.fire_once(project_id, "live_accuracy", str(row["model_version"]), reason):
                await defer_snapshot(project_id, reason)
                said.append(reason)
    return f"project {project_id}: " + "; ".join(said)


async def requeue_stalled() -> None:
    for job in await app.job_manager.get_stalled_jobs(seconds_since_heartbeat=STALLED_AFTER_S):
        log.warning("job %s (%s) lost its worker; queued again", job.id, job.task_name)
        await app.job_manager.retry_job(job)


@app.periodic(cron="* * * * * */5")
@app.task(name="tick", queue="ticks", queueing_lock="tick")
async def tick(timestamp: int) -> None:
    await requeue_stalled()
    await snapshots_due_by_time()
    await stable_versions_due()
    await schedules_due(datetime.now(UTC))
    await follow_runs()


async def record_groups_later(
    project_id: int, given: list[dict[str, Any]], groups: list[str], model_version: str
) -> None:
    """Queues the recording of each task's group where its meta does not say it yet."""
    changed = []
    for task, group in zip(given, groups, strict=True):
        meta = task.get("meta") if isinstance(task.get("meta"), dict) else {}
        wanted = {"group": group, "model_version": model_version if group == "assisted" else None}
        if meta.get(assist.META_KEY) != wanted:
            changed.append({"id": int(task["id"]), "meta": {**meta, assist.META_KEY: wanted}})
    if changed:
        await record_groups.defer_async(project_id=project_id, changed=changed)


@app.task(name="record_groups", queue="labels", retry=procrastinate.RetryStrategy(max_attempts=5, wait=5))
async def record_groups(project_id: int, changed: list[dict[str, Any]]) -> str:
    label_studio = context().label_studio
    # Two at a time: Label Studio's workers also serve the annotators.
    limit = asyncio.Semaphore(2)
    failed: list[dict[str, Any]] = []

    async def record(task: dict[str, Any]) -> None:
        async with limit:
            try:
                await asyncio.to_thread(label_studio.set_task_meta, task["id"], task["meta"])
            except LabelStudioError as err:
                if err.status != 404:  # a task deleted since needs nothing
                    failed.append(task)
                    log.warning("task %s: its group not recorded yet: %s", task["id"], err)

    await asyncio.gather(*(record(task) for task in changed))
    if failed:
        # Only those again, a little later (the ones recorded stay recorded).
        await record_groups.configure(schedule_in={"seconds": 10}).defer_async(project_id=project_id, changed=failed)
    return (
        f"project {project_id}: the group of {len(changed) - len(failed)} task(s) recorded, {len(failed)} again later"
    )


def ml_backend_body(config: ServiceConfig, project_id: int) -> dict[str, Any]:
    return {
        "project": project_id,
        "url": config.ml_backend_url,
        "title": ML_BACKEND_TITLE,
        "description": "mlenv: the production model's suggestions, none for the control group",
        "auth_method": "BASIC_AUTH",
        "basic_auth_user": ML_BACKEND_USER,
        "basic_auth_pass": config.webhook_secret,
        "is_interactive": False,
    }


# Backends given the password since this process started: after a restart (a rotated secret
# restarts the service) each is given it once again, since Label Studio never shows it back.
_backends_given_password: set[int] = set()


def connect_ml_backend(found: Context, project: dict[str, Any], assisted: bool) -> None:
    """The service as the project's ML backend when it is assisted, and not otherwise; Label
    Studio's automatic webhook to the backend is removed (the service's own brings every event)."""
    config, label_studio = found.config, found.label_studio
    backends = label_studio.ml_backends(project["id"])
    ours = [backend for backend in backends if backend.get("url") == config.ml_backend_url]
    if not assisted:
        for backend in ours:
            label_studio.delete_ml_backend(backend["id"])
            log.info("project %s is not assisted: removed the service as its ML backend", project["id"])
        return
    wanted = ml_backend_body(config, project["id"])
    if not ours:
        backend = label_studio.create_ml_backend(wanted)
        log.info("project %s: the service is its ML backend (%s)", project["id"], backend["id"])
    elif ours[0]["id"] not in _backends_given_password or any(
        ours[0].get(key) != wanted[key] for key in ("title", "auth_method", "basic_auth_user", "is_interactive")
    ):
        backend = label_studio.update_ml_backend(ours[0]["id"], wanted)
    else:
        backend = ours[0]
    _backends_given_password.add(backend["id"])
    for hook in label_studio.webhooks(project["id"]):
        if hook.get("url") == config.ml_backend_url + "/webhook":
            label_studio.delete_webhook(hook["id"])
    if project.get("model_version") != ML_BACKEND_TITLE or not project.get("show_collab_predictions", True):
        label_studio.update_project(project["id"], {"model_version": ML_BACKEND_TITLE, "show_collab_predictions": True})


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


def connect_projects(found: Context) -> list[dict[str, Any]]:
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
        connected.append({**project, "webhook_id": hook["id"]})
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
    for project in connected:
        await found.store.connect_project(project["id"], project["title"], project["webhook_id"])
    await found.store.keep_projects([project["id"] for project in connected])
    # Once the projects are stored: Label Studio calls the backend's /setup while it connects it.
    for project in connected:
        loop_project = found.config.project_titled(project["title"])
        await asyncio.to_thread(connect_ml_backend, found, project, bool(loop_project and loop_project.assist))


@app.periodic(cron="* * * * * */30")
@app.task(name="connect", queue="ticks", queueing_lock="connect")
async def connect(timestamp: int) -> None:
    await connect_now()
