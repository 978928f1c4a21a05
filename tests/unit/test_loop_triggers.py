"""The triggers beside the annotation count, without a database: what a webhook carries for live
accuracy, a model version's live figures and when its window is full, and that the tag `stable`
and a schedule each fire once for their subject (the store here keeps the fired subjects as the
real table's unique key does; PostgreSQL itself answers in the e2e tests)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from mlenv_loop.service import config as settings
from mlenv_loop.service import tasks
from mlenv_loop.webhooks import parse
from tests.unit.test_loop_service import GOOD, SECRETS

RESULT = [{"from_name": "label", "to_name": "text", "type": "choices", "value": {"choices": ["bug"]}}]


def event(**annotation: Any) -> bytes:
    return json.dumps({"action": "ANNOTATION_CREATED", "project": {"id": 3},
                       "annotation": {"id": 9, "result": RESULT, **annotation},
                       "task": {"id": 4, "data": {"text": "it crashes"}}}).encode()  # fmt: skip


def test_a_webhook_carries_the_label_and_its_tasks_data_for_live_accuracy() -> None:
    (labelled,) = parse(event()).labelled
    assert (labelled.annotation_id, labelled.data, labelled.result) == (9, {"text": "it crashes"}, RESULT)
    # A reviewer's gold label and a skipped task are no annotator's label.
    assert parse(event(ground_truth=True)).labelled == () and parse(event(was_cancelled=True)).labelled == ()
    bulk = {"action": "ANNOTATIONS_CREATED", "project": {"id": 3}, "annotations": [{"id": 1}, {"id": 2}]}
    assert parse(json.dumps(bulk).encode()).labelled == ()


def row(**counts: int) -> dict[str, Any]:
    base = {"model": "tickets", "model_version": "3", "pairs": 80, "correct": 60, "unshown": 40,
            "unshown_correct": 24, "window_unshown": 40, "window_unshown_correct": 24,
            "window_all": 50, "window_all_correct": 40}  # fmt: skip
    return {**base, **counts}


def test_live_figures_prefer_the_predictions_nobody_was_shown_once_the_window_is_full() -> None:
    metrics, windowed, holds = tasks.live_figures(row(), 40)
    assert metrics == {"live_accuracy": 0.75, "live_pairs": 80.0, "live_accuracy_unassisted": 0.6}
    assert windowed == 0.6 and holds == "not shown to the annotators"
    # Too few unshown pairs for the window: all pairs.
    assert tasks.live_figures(row(), 50)[1:] == (0.8, "shown or not")
    # Too few pairs at all: no windowed figure, no trigger.
    assert tasks.live_figures(row(), 60)[1] is None


class Store:
    def __init__(self) -> None:
        self.fired: dict[tuple[int, str, str], str] = {}
        self.runs: list[dict[str, Any]] = []

    async def project_id_titled(self, title: str) -> int | None:
        return 7 if title == "Tickets" else None

    async def triggers(self, project_id: int) -> list[dict[str, Any]]:
        return [{"kind": kind, "subject": subject} for (pid, kind, subject) in self.fired if pid == project_id]

    async def fire_once(self, project_id: int, kind: str, subject: str, reason: str) -> bool:
        if (project_id, kind, subject) in self.fired:
            return False
        self.fired[(project_id, kind, subject)] = reason
        return True

    async def add_run(self, **run: Any) -> tuple[dict[str, Any], bool]:
        found = next((one for one in self.runs if (one["dataset"], one["version"]) == (run["dataset"], run["version"])),
                     None)  # fmt: skip
        if found:
            return found, False
        self.runs.append({**run, "id": f"tickets-{run['version'][:12]}", "state": "succeeded"})
        return self.runs[-1], True


class Datasets:
    version: str | None = "0123456789abcdef"

    def tagged(self, dataset: str, tag: str) -> str | None:
        assert (dataset, tag) == ("tickets", "stable")
        return self.version

    def manifest_of(self, dataset: str, version: str) -> dict[str, Any]:
        return {"counts": {"annotations": 12}}


class Runner:
    kind = "systemd"


@pytest.fixture
def context(monkeypatch: pytest.MonkeyPatch) -> tuple[Store, list[tuple[int, str]]]:
    projects = [{**GOOD["projects"][0], "retrain_every_hours": 6}]
    config = settings.parse({**GOOD, "projects": projects}, SECRETS)
    store, snapshots = Store(), []
    tasks.use(tasks.Context(config=config, store=store, label_studio=None, datasets=Datasets(),  # type: ignore[arg-type]
                            runner=Runner()))  # type: ignore[arg-type]  # fmt: skip

    async def defer_snapshot(project_id: int, reason: str) -> bool:
        snapshots.append((project_id, reason))
        return True

    monkeypatch.setattr(tasks, "defer_snapshot", defer_snapshot)
    return store, snapshots


def test_a_version_tagged_stable_is_trained_once(context) -> None:
    store, _ = context
    for _ in range(3):
        asyncio.run(tasks.stable_versions_due())
    (run,) = store.runs
    assert run["version"] == "0123456789abcdef" and run["trigger"] == "dataset version 0123456789abcdef tagged stable"
    assert run["annotations"] == 12 and run["project_id"] == 7
    assert list(store.fired) == [(7, "stable", "0123456789abcdef")]
    Datasets.version = "fedcba9876543210"
    try:
        asyncio.run(tasks.stable_versions_due())
    finally:
        Datasets.version = "0123456789abcdef"
    assert [one["version"] for one in store.runs] == ["0123456789abcdef", "fedcba9876543210"]


def test_a_schedule_snapshots_once_per_period(context) -> None:
    _, snapshots = context
    start = datetime(2026, 12, 3, 0, 30, tzinfo=UTC)
    for minutes in (0, 60, 300):
        asyncio.run(tasks.schedules_due(start.replace(minute=0, hour=minutes // 60)))
    assert snapshots == [(7, "scheduled (every 6 h)")]
    asyncio.run(tasks.schedules_due(start.replace(hour=6)))
    assert len(snapshots) == 2


def test_trigger_settings_are_checked() -> None:
    projects = [{**GOOD["projects"][0], "retrain_below": 1.5, "retrain_every_hours": -1, "live_window": 0}]
    with pytest.raises(settings.ConfigProblem) as raised:
        settings.parse({**GOOD, "projects": projects}, SECRETS)
    for expected in ("retrain_below: 1.5", "retrain_every_hours: -1", "live_window: 0"):
        assert expected in str(raised.value)


class LoggedStore:
    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    async def add_predictions(self, rows: list[dict[str, Any]]) -> None:
        self.rows += rows


ENTRY = {"request_id": "r1", "model": "tickets", "model_version": "4", "input_ref": "ab" * 32, "label": "bug"}


@pytest.fixture
def logging_client():
    from starlette.testclient import TestClient

    from mlenv_loop.service.web import application

    store = LoggedStore()
    config = settings.parse(GOOD, {**SECRETS, settings.PREDICTION_LOG_TOKEN_ENV: "log-token"})
    tasks.use(tasks.Context(config=config, store=store, label_studio=None, datasets=None, runner=None))  # type: ignore[arg-type]
    with TestClient(application()) as client:
        yield client, store


def test_the_prediction_log_takes_the_gateways_batches_with_its_own_token(logging_client) -> None:
    client, store = logging_client
    answer = client.post(
        "/api/predictions", json={"predictions": [ENTRY]}, headers={"Authorization": "Bearer log-token"}
    )
    assert answer.status_code == 202 and answer.json() == {"logged": 1}
    assert store.rows == [{**ENTRY, "project_id": None, "task_id": None, "shown": False}]


@pytest.mark.parametrize(
    ("headers", "body", "status", "message"),
    [({}, {"predictions": [ENTRY]}, 401, "prediction log's token"),
     # The service's API token reads runs; it does not write predictions.
     ({"Authorization": f"Bearer {SECRETS['MLENV_LOOP_API_TOKEN']}"}, {"predictions": [ENTRY]}, 401, "token"),
     ({"Authorization": "Bearer log-token"}, {"predictions": []}, 400, "1 to 5000 entries"),
     ({"Authorization": "Bearer log-token"}, {"predictions": [{**ENTRY, "extra": "x"}]}, 400, "exactly"),
     ({"Authorization": "Bearer log-token"}, {"predictions": [{**ENTRY, "label": 3}]}, 400, "every value is a string")],
)  # fmt: skip
def test_bad_prediction_log_batches_are_refused_and_store_nothing(logging_client, headers, body, status, message):
    client, store = logging_client
    answer = client.post("/api/predictions", json=body, headers=headers)
    assert answer.status_code == status and message in answer.json()["error"]
    assert store.rows == []


class FlakyLabelStudio:
    """Refuses the meta of task 2 once (a busy Label Studio), has no task 3 any more."""

    def __init__(self) -> None:
        self.meta: dict[int, dict] = {}
        self.refused = False

    def set_task_meta(self, task_id: int, meta: dict) -> None:
        from mlenv_loop.labelstudio import LabelStudioError

        if task_id == 3:
            raise LabelStudioError("Label Studio has no tasks/3 (404)", 404)
        if task_id == 2 and not self.refused:
            self.refused = True
            raise LabelStudioError("Label Studio answered 502", 502)
        self.meta[task_id] = meta


def test_a_group_label_studio_did_not_take_is_recorded_again_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    label_studio, again = FlakyLabelStudio(), []
    tasks.use(tasks.Context(config=settings.parse(GOOD, SECRETS), store=None, label_studio=label_studio,  # type: ignore[arg-type]
                            datasets=None, runner=None))  # type: ignore[arg-type]  # fmt: skip

    class Deferred:
        async def defer_async(self, **arguments: Any) -> None:
            again.append(arguments)

    monkeypatch.setattr(tasks.record_groups, "configure", lambda **_: Deferred())
    changed = [{"id": number, "meta": {"mlenv": {"group": "control", "model_version": None}}} for number in (1, 2, 3)]
    outcome = asyncio.run(tasks.record_groups(project_id=7, changed=changed))
    assert set(label_studio.meta) == {1} and again == [{"project_id": 7, "changed": [changed[1]]}]
    assert outcome == "project 7: the group of 2 task(s) recorded, 1 again later"
    asyncio.run(tasks.record_groups(**again[0]))
    assert set(label_studio.meta) == {1, 2}
