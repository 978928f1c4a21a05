"""The service's HTTP side: Label Studio's webhooks in, the runs out (for `mlenv runs`), the
loop's overview (for the landing page), its metrics (for Prometheus), health, and (under /ml, see
ml_backend) Label Studio's ML backend.

A webhook is checked (secret, then body, then project) before anything is stored: a wrong
secret is 401, a body that is not an annotation event 400, a project the service does not train
from 404, and none of them leaves a row behind. An accepted one is stored before the answer.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from mlenv_loop.registry import PRODUCTION, Registry, RegistryError
from mlenv_loop.service import metrics, ml_backend, tasks
from mlenv_loop.service.config import LoopProject
from mlenv_loop.service.replies import bearer_matches, json_body, refuse
from mlenv_loop.service.runners import RunnerError
from mlenv_loop.service.store import STATES
from mlenv_loop.webhooks import MAX_BODY_BYTES, SECRET_HEADER, BadPayload, parse, secret_matches

log = logging.getLogger("mlenv_loop")


async def health(request: Request) -> Response:
    async with tasks.context().store.pool.connection() as connection:
        await connection.execute("SELECT 1")
    return JSONResponse({"status": "ok"})


async def label_studio_webhook(request: Request) -> Response:
    found = tasks.context()
    if not secret_matches(request.headers.get(SECRET_HEADER), found.config.webhook_secret):
        return refuse(401, f"missing or wrong {SECRET_HEADER}")
    if int(request.headers.get("content-length") or 0) > MAX_BODY_BYTES:
        return refuse(413, f"the body is over {MAX_BODY_BYTES} bytes")
    try:
        event = parse(await request.body())
    except BadPayload as err:
        return refuse(400, str(err))
    loop_project = await tasks.loop_project_of(event.project_id)
    if loop_project is None:
        return refuse(404, f"Label Studio project {event.project_id} is not one this service trains from")
    waiting = await found.store.add_event(event.project_id, event.action, event.annotation_ids)
    if event.labelled:
        await tasks.pair_labels(event.project_id, event.labelled)
    reason = await tasks.due(event.project_id, loop_project)
    queued = await tasks.defer_snapshot(event.project_id, reason) if reason else False
    return JSONResponse({"accepted": event.action, "waiting": waiting.count, "snapshot_queued": queued}, 202)


def authorized(request: Request) -> bool:
    return bearer_matches(request, tasks.context().config.api_token)


def jsonable(row: dict[str, Any]) -> dict[str, Any]:
    return {key: value.isoformat() if isinstance(value, datetime) else value for key, value in row.items()}


def public(run: dict[str, Any]) -> dict[str, Any]:
    shown = jsonable(run)
    shown["log"] = tasks.context().runner.log_location(run)
    return shown


async def runs(request: Request) -> Response:
    if not authorized(request):
        return refuse(401, "give the service's API token as a Bearer token")
    return JSONResponse({"runs": [public(run) for run in await tasks.context().store.runs()]})


async def one_run(request: Request) -> Response:
    if not authorized(request):
        return refuse(401, "give the service's API token as a Bearer token")
    run = await tasks.context().store.run(request.path_params["run_id"])
    if run is None:
        return refuse(404, f"no run {request.path_params['run_id']}")
    if request.url.path.endswith("/log"):
        try:
            return PlainTextResponse(await tasks.context().runner.log(run))
        except RunnerError as err:
            return refuse(502, str(err))
    return JSONResponse(public(run))


async def projects(request: Request) -> Response:
    if not authorized(request):
        return refuse(401, "give the service's API token as a Bearer token")
    found = []
    for project in await tasks.context().store.projects():
        waiting = await tasks.context().store.waiting(project["project_id"])
        found.append({**public_project(project), "waiting": waiting.count})
    return JSONResponse({"projects": found})


async def project_predictions(request: Request) -> Response:
    if not authorized(request):
        return refuse(401, "give the service's API token as a Bearer token")
    try:
        project_id = int(request.path_params["project_id"])
    except ValueError:
        return refuse(404, f"no project {request.path_params['project_id']}")
    found = await tasks.context().store.predictions(project_id)
    return JSONResponse({"predictions": [jsonable(row) for row in found]})


PREDICTION_KEYS = {"request_id", "model", "model_version", "input_ref", "label"}
MAX_PREDICTIONS = 5000


def logged_predictions(body: dict[str, Any]) -> list[dict[str, Any]] | str:
    """The entries of a prediction log batch, or what is wrong with it."""
    entries = body.get("predictions")
    if not isinstance(entries, list) or not 0 < len(entries) <= MAX_PREDICTIONS:
        return f"give {{'predictions': [...]}} with 1 to {MAX_PREDICTIONS} entries"
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict) or set(entry) != PREDICTION_KEYS:
            return f"predictions[{index}] must have exactly {', '.join(sorted(PREDICTION_KEYS))}"
        if not all(isinstance(value, str) and len(value) <= 512 for value in entry.values()):
            return f"predictions[{index}]: every value is a string (at most 512 characters)"
    return entries


async def prediction_log(request: Request) -> Response:
    """Predictions an inference gateway answered: logged for the live accuracy (never shown to annotators)."""
    if not bearer_matches(request, tasks.context().config.prediction_log_token):
        return refuse(401, "give the prediction log's token as a Bearer token")
    body = await json_body(request, MAX_BODY_BYTES * 4)
    if isinstance(body, Response):
        return body
    entries = logged_predictions(body)
    if isinstance(entries, str):
        return refuse(400, entries)
    await tasks.context().store.add_predictions(
        [{**entry, "project_id": None, "task_id": None, "shown": False} for entry in entries]
    )
    return JSONResponse({"logged": len(entries)}, status_code=202)


# Dataset versions per project the overview lists, newest first.
OVERVIEW_DATASETS = 3


def production_of(registry: Registry, model: str) -> str | None:
    """The version the model's production alias points at; None before the first promotion. (Before
    its first run registers it, MLflow's auth answers 403 for a model nobody has made, not 404.)"""
    try:
        return registry.by_alias(model, PRODUCTION).version
    except RegistryError as err:
        if err.status in (403, 404):
            return None
        raise


async def connected_projects() -> list[tuple[dict[str, Any], LoopProject]]:
    """The projects the service has connected that its settings still train from, each with those settings."""
    found = tasks.context()
    pairs = [(project, found.config.project_titled(project["title"])) for project in await found.store.projects()]
    return [(project, loop_project) for project, loop_project in pairs if loop_project is not None]


async def overview(request: Request) -> Response:
    """Where each project's loop stands (the landing page's): its latest dataset versions, its runs
    by state, the model version in production and that version's live accuracy."""
    if not authorized(request):
        return refuse(401, "give the service's API token as a Bearer token")
    found = tasks.context()
    settings = found.config.mlflow
    registry = Registry(settings.url, settings.username, settings.password)
    runs = await found.store.runs()
    projects = []
    for project, loop_project in await connected_projects():
        mine = [run for run in runs if run["project_id"] == project["project_id"]]
        try:
            production = await asyncio.to_thread(production_of, registry, loop_project.model)
        except RegistryError as err:
            return refuse(502, f"MLflow: {err}")
        live = await found.store.live_accuracy(project["project_id"], loop_project.live_window)
        row = next((one for one in live if one["model_version"] == production), None)
        projects.append(
            {
                "title": project["title"],
                "dataset": loop_project.dataset,
                "model": loop_project.model,
                "datasets": [
                    {
                        "version": run["version"],
                        "annotations": run["annotations"],
                        "created_at": run["created_at"].isoformat(),
                    }
                    for run in mine[:OVERVIEW_DATASETS]
                ],
                "runs": {state: sum(1 for run in mine if run["state"] == state) for state in STATES},
                "latest_run": public(mine[0]) if mine else None,
                "production": {
                    "version": production,
                    "live_accuracy": row["correct"] / row["pairs"] if row else None,
                    "live_pairs": row["pairs"] if row else 0,
                },
            }
        )
    return JSONResponse({"projects": projects})


async def prometheus_metrics(request: Request) -> Response:
    """The loop's figures for Prometheus (see metrics)."""
    if not authorized(request):
        return refuse(401, "give the service's API token as a Bearer token")
    found = tasks.context()
    connected = await connected_projects()
    waiting = {
        project["project_id"]: (await found.store.waiting(project["project_id"])).count for project, _ in connected
    }
    live = {
        project["project_id"]: await found.store.live_accuracy(project["project_id"], loop_project.live_window)
        for project, loop_project in connected
    }
    text = metrics.exposition(
        [project for project, _ in connected],
        await found.store.run_states(),
        waiting,
        live,
        {project["project_id"]: loop_project.retrain_below for project, loop_project in connected},
    )
    return PlainTextResponse(text, media_type=metrics.CONTENT_TYPE)


def public_project(project: dict[str, Any]) -> dict[str, Any]:
    loop_project = tasks.context().config.project_titled(project["title"])
    return {
        "project_id": project["project_id"],
        "title": project["title"],
        "dataset": loop_project.dataset if loop_project else None,
        "model": loop_project.model if loop_project else None,
        "webhook_id": project["webhook_id"],
    }


def application() -> Starlette:
    return Starlette(
        routes=[
            Route("/health", health),
            Route("/webhooks/label-studio", label_studio_webhook, methods=["POST"]),
            Route("/api/runs", runs),
            Route("/api/runs/{run_id}", one_run),
            Route("/api/runs/{run_id}/log", one_run),
            Route("/api/projects", projects),
            Route("/api/overview", overview),
            Route("/metrics", prometheus_metrics),
            Route("/api/projects/{project_id}/predictions", project_predictions),
            Route("/api/predictions", prediction_log, methods=["POST"]),
            *ml_backend.ROUTES,
        ]
    )
