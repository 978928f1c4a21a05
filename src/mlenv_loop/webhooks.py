"""Label Studio's annotation webhooks as the trigger service reads them, and when they are due
to become a dataset version (every N new annotations, or T minutes after the first one waiting).

Pure functions: the service verifies and parses each request here before anything is stored,
so a wrong secret or a malformed body changes nothing.
"""

from __future__ import annotations

import hmac
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from mlenv_loop.errors import LoopError

SECRET_HEADER = "X-Mlenv-Webhook-Secret"  # noqa: S105 (the header's name, not a secret)
# Label Studio's names: one annotation made or changed; several made at once (import); several deleted.
ACTIONS = {"ANNOTATION_CREATED", "ANNOTATIONS_CREATED", "ANNOTATION_UPDATED", "ANNOTATIONS_DELETED"}
MAX_BODY_BYTES = 1 << 20


class BadPayload(LoopError):
    """The request is not an annotation webhook mlenv can use; the message says what is wrong (HTTP 400)."""


def secret_matches(given: str | None, expected: str) -> bool:
    """Constant time, so the comparison says nothing about how much of a guess was right."""
    return given is not None and bool(expected) and hmac.compare_digest(given.encode(), expected.encode())


@dataclass(frozen=True)
class Labelled:
    """One annotation as the webhook carries it, with its task's data: what live accuracy pairs."""

    annotation_id: int
    data: dict[str, Any]
    result: list[dict[str, Any]]


@dataclass(frozen=True)
class AnnotationEvent:
    action: str
    project_id: int
    annotation_ids: tuple[int, ...]
    labelled: tuple[Labelled, ...] = ()


def _identifier(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise BadPayload(f"{what} must be a positive integer, not {value!r}")
    return value


def parse(body: bytes) -> AnnotationEvent:
    if len(body) > MAX_BODY_BYTES:
        raise BadPayload(f"the body is over {MAX_BODY_BYTES} bytes")
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise BadPayload(f"the body is not JSON ({err})") from None
    if not isinstance(payload, dict):
        raise BadPayload("the body is not a JSON object")
    action = payload.get("action")
    if action not in ACTIONS:
        raise BadPayload(f"action {action!r} is not one of {', '.join(sorted(ACTIONS))}")
    project = payload.get("project")
    if not isinstance(project, dict):
        raise BadPayload("the body has no project object")
    project_id = _identifier(project.get("id"), "project.id")
    labelled: tuple[Labelled, ...] = ()
    if action in {"ANNOTATION_CREATED", "ANNOTATION_UPDATED"}:
        annotation = payload.get("annotation")
        if not isinstance(annotation, dict):
            raise BadPayload(f"{action} has no annotation object")
        ids = [_identifier(annotation.get("id"), "annotation.id")]
        task = payload.get("task")
        result = annotation.get("result")
        human = not annotation.get("was_cancelled") and not annotation.get("ground_truth")
        if human and isinstance(task, dict) and isinstance(task.get("data"), dict) and isinstance(result, list):
            labelled = (Labelled(ids[0], task["data"], result),)
    else:
        annotations = payload.get("annotations")
        if not isinstance(annotations, list) or not annotations:
            raise BadPayload(f"{action} has no annotations list")
        ids = [_identifier(one.get("id") if isinstance(one, dict) else None, "annotations[].id") for one in annotations]
    return AnnotationEvent(action=action, project_id=project_id, annotation_ids=tuple(ids), labelled=labelled)


@dataclass(frozen=True)
class Debounce:
    """When the annotations waiting for a project are due to become a dataset version."""

    every: int
    after: timedelta

    def __post_init__(self) -> None:
        if self.every < 1 or self.after <= timedelta(0):
            raise LoopError(f"debounce every={self.every}, after={self.after}: give at least 1 and a positive time")

    def due(self, waiting: int, oldest: datetime | None, now: datetime) -> str | None:
        """The reason to snapshot now (it becomes the trigger recorded on the model), or None to wait."""
        if waiting >= self.every:
            return f"{waiting} new annotation events (every {self.every})"
        if waiting and oldest is not None and now - oldest >= self.after:
            minutes = (now - oldest).total_seconds() / 60
            return f"{waiting} new annotation event(s), the first {minutes:.0f} min ago (after {self.after})"
        return None
