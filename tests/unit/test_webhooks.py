"""Label Studio's annotation webhooks, read the way the trigger service will: every bad request is
refused with its reason before anything is stored, and the debounce says when labels are due."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from mlenv_loop.errors import LoopError
from mlenv_loop.webhooks import AnnotationEvent, BadPayload, Debounce, parse, secret_matches

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def body(**payload: object) -> bytes:
    return json.dumps(payload).encode()


def test_one_annotation_made_or_changed() -> None:
    for action in ("ANNOTATION_CREATED", "ANNOTATION_UPDATED"):
        event = parse(body(action=action, project={"id": 3, "title": "t"}, annotation={"id": 41, "task": 9}))
        assert event == AnnotationEvent(action, 3, (41,))


def test_several_annotations_deleted_or_imported_at_once() -> None:
    event = parse(body(action="ANNOTATIONS_DELETED", project={"id": 3}, annotations=[{"id": 5}, {"id": 6}]))
    assert event.annotation_ids == (5, 6)
    assert parse(body(action="ANNOTATIONS_CREATED", project={"id": 3}, annotations=[{"id": 7}])).annotation_ids == (7,)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"not json", "not JSON"),
        (b"\xff\xfe", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (body(action="PROJECT_CREATED", project={"id": 3}), "action 'PROJECT_CREATED' is not one of"),
        (body(action="ANNOTATION_CREATED", annotation={"id": 1}), "no project object"),
        (body(action="ANNOTATION_CREATED", project={"id": "3"}, annotation={"id": 1}), "project.id must be"),
        (body(action="ANNOTATION_CREATED", project={"id": True}, annotation={"id": 1}), "project.id must be"),
        (body(action="ANNOTATION_UPDATED", project={"id": 3}), "has no annotation object"),
        (body(action="ANNOTATION_UPDATED", project={"id": 3}, annotation={"id": -1}), "annotation.id must be"),
        (body(action="ANNOTATIONS_DELETED", project={"id": 3}, annotations=[]), "has no annotations list"),
        (body(action="ANNOTATIONS_DELETED", project={"id": 3}, annotations=[7]), "annotations[].id must be"),
        (b"{" + b" " * (1 << 20) + b"}", "over 1048576 bytes"),
    ],
)
def test_malformed_requests_are_refused_with_the_reason(raw: bytes, message: str) -> None:
    with pytest.raises(BadPayload, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse(raw)


def test_the_secret_must_match_exactly() -> None:
    assert secret_matches("s3cret-value", "s3cret-value")
    for given in (None, "", "s3cret", "s3cret-value ", "S3CRET-VALUE"):
        assert not secret_matches(given, "s3cret-value")
    assert not secret_matches("", "")  # an unset secret lets nothing through


def test_labels_are_due_every_n_events_or_some_time_after_the_first_one_waiting() -> None:
    debounce = Debounce(every=20, after=timedelta(minutes=10))
    assert debounce.due(0, None, NOW) is None
    assert debounce.due(19, NOW - timedelta(minutes=9), NOW) is None
    assert debounce.due(20, NOW, NOW) == "20 new annotation events (every 20)"
    reason = debounce.due(3, NOW - timedelta(minutes=12), NOW)
    assert reason is not None and reason.startswith("3 new annotation event(s), the first 12 min ago")


@pytest.mark.parametrize(("every", "after"), [(0, timedelta(minutes=1)), (5, timedelta(0))])
def test_a_debounce_that_would_never_or_always_fire_is_refused(every: int, after: timedelta) -> None:
    with pytest.raises(LoopError, match="give at least 1 and a positive time"):
        Debounce(every=every, after=after)
