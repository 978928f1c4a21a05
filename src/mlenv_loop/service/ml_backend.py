"""The service as Label Studio's ML backend (its protocol: /health, /setup, /predict, /webhook and
the older /train), under /ml on the service's address.

Label Studio logs in with basic auth (the name `label-studio` and the webhook secret, both set on
the backend by the `connect` job). A suggestion is the `production` model's answer from the model
server, with `model_version` naming the registry version; the tasks of the control group get
none. Every prediction made (shown or not: the control group's are kept too, so the live
accuracy has an unanchored half) is logged with its request id, model version and the input's
reference, and each task's group is recorded on the task by a job, after the answer.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mlenv_loop import assist
from mlenv_loop.service import tasks
from mlenv_loop.service.config import ML_BACKEND_USER, LoopProject
from mlenv_loop.service.replies import json_body, refuse
from mlenv_loop.serving import ModelServer, ServingError
from mlenv_loop.webhooks import MAX_BODY_BYTES, secret_matches

log = logging.getLogger("mlenv_loop")
TRAINING_REQUESTED = "training requested in Label Studio"


def label_studio_logged_in(request: Request) -> bool:
    header = request.headers.get("authorization", "")
    if not header.startswith("Basic "):
        return False
    try:
        username, _, password = base64.b64decode(header[6:], validate=True).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return False
    return username == ML_BACKEND_USER and secret_matches(password, tasks.context().config.webhook_secret)


async def logged_in_body(request: Request) -> dict[str, Any] | JSONResponse:
    """The body of a call Label Studio made logged in, or the refusal."""
    if not label_studio_logged_in(request):
        return refuse(401, "log in as Label Studio (basic auth)")
    return await json_body(request, MAX_BODY_BYTES * 16)


def project_id_of(value: Any) -> int | None:
    """Label Studio names a project "<id>.<created timestamp>" in these calls (or as an object)."""
    if isinstance(value, dict):
        value = value.get("id")
    head = str(value).split(".", 1)[0]
    return int(head) if head.isdigit() else None


async def assisted_project(body: dict[str, Any]) -> tuple[int, LoopProject] | JSONResponse:
    project_id = project_id_of(body.get("project"))
    if project_id is None:
        return refuse(400, "the body names no project")
    loop_project = await tasks.loop_project_of(project_id)
    if loop_project is None:
        return refuse(404, f"Label Studio project {project_id} is not one this service trains from")
    return project_id, loop_project


async def project_call(request: Request) -> tuple[dict[str, Any], int, LoopProject] | JSONResponse:
    """A logged-in call about one of the service's projects: its body and the project, or the refusal."""
    body = await logged_in_body(request)
    if isinstance(body, Response):
        return body
    found = await assisted_project(body)
    return found if isinstance(found, Response) else (body, *found)


def model_server() -> ModelServer:
    settings = tasks.context().config.model_server
    return ModelServer(settings.url, settings.username, settings.password)


async def production_version(model: str) -> str | None:
    try:
        return await asyncio.to_thread(model_server().served_version, model)
    except ServingError as err:
        log.warning("the model server cannot say which version of %s it serves: %s", model, err)
        return None


async def health(request: Request) -> Response:
    if not label_studio_logged_in(request):
        return refuse(401, "log in as Label Studio (basic auth)")
    return JSONResponse({"status": "UP", "model_class": "mlenv"})


async def setup(request: Request) -> Response:
    found = await project_call(request)
    if isinstance(found, Response):
        return found
    body, _, loop_project = found
    try:
        assist.choice_target(str(body.get("schema") or ""))
    except assist.UnusableConfig as err:
        return refuse(400, str(err))
    version = await production_version(loop_project.model)
    return JSONResponse({"model_version": assist.model_version_label(loop_project.model, version)})


async def predict(request: Request) -> Response:
    found = await project_call(request)
    if isinstance(found, Response):
        return found
    body, project_id, loop_project = found
    given = body.get("tasks")
    if not isinstance(given, list) or not all(isinstance(task, dict) and "id" in task for task in given):
        return refuse(400, "tasks must be a list of tasks with their ids")
    try:
        target = assist.choice_target(str(body.get("label_config") or ""))
    except assist.UnusableConfig as err:
        return refuse(400, str(err))
    results = await suggestions(project_id, loop_project, target, given)
    return JSONResponse({"results": results})


async def suggestions(
    project_id: int, loop_project: LoopProject, target: assist.ChoiceTarget, given: list[dict[str, Any]]
) -> list[Any]:
    """Per task, in order: its suggestion, or [] (control group, no text, nothing in production)."""
    groups = [
        assist.group_of(loop_project.dataset, task.get("data") or {}, loop_project.control_percent)
        if loop_project.assist
        else "control"
        for task in given
    ]
    texts = [(task.get("data") or {}).get(target.data_key) for task in given]
    wanted = [index for index, text in enumerate(texts) if isinstance(text, str)]
    version = await production_version(loop_project.model)
    labels: dict[int, str] = {}
    if version and wanted:
        try:
            answered = await asyncio.to_thread(model_server().predict, loop_project.model, [texts[i] for i in wanted])
            labels = dict(zip(wanted, answered, strict=True))
        except (ServingError, ValueError) as err:
            log.warning("no suggestions for project %s: %s", project_id, err)
    shown = assist.model_version_label(loop_project.model, version)
    request_id = uuid.uuid4().hex
    await tasks.context().store.add_predictions(
        [
            {"request_id": request_id, "project_id": project_id, "task_id": int(task["id"]),
             "input_ref": assist.input_reference(task.get("data") or {}), "model": loop_project.model,
             "model_version": version, "label": labels[index], "shown": groups[index] == "assisted"}
            for index, task in enumerate(given)
            if index in labels
        ]
    )  # fmt: skip
    await tasks.record_groups_later(project_id, given, groups, shown)
    return [
        assist.suggestion(target, labels[index], shown) if groups[index] == "assisted" and index in labels else []
        for index in range(len(given))
    ]


async def webhook(request: Request) -> Response:
    """Label Studio's "Start training" (through the ML API, logged in); other events are the main
    webhook's, which brings every annotation already."""
    body = await logged_in_body(request)
    if isinstance(body, Response):
        return body
    if body.get("action") != "START_TRAINING":
        return JSONResponse({"status": "ignored: annotations come through the service's own webhook"})
    return await train_now(request)


async def train(request: Request) -> Response:
    """The older "Start training" call of Label Studio's ML API."""
    return await train_now(request)


async def train_now(request: Request) -> Response:
    found = await project_call(request)
    if isinstance(found, Response):
        return found
    _, project_id, _ = found
    queued = await tasks.defer_snapshot(project_id, TRAINING_REQUESTED)
    return JSONResponse({"status": "ok", "snapshot_queued": queued}, status_code=201)


ROUTES = [
    Route("/ml", health),
    Route("/ml/health", health),
    Route("/ml/setup", setup, methods=["POST"]),
    Route("/ml/predict", predict, methods=["POST"]),
    Route("/ml/webhook", webhook, methods=["POST"]),
    Route("/ml/train", train, methods=["POST"]),
]
