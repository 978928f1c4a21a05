"""The trigger service as Label Studio's ML backend, without a database or Label Studio: the
protocol's calls and refusals, the control group (deterministic, in its share, by the task's data
and not its id), what is logged and recorded, and how the `connect` job attaches the backend to
the projects (Label Studio itself answers in the e2e tests)."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from mlenv_loop import assist
from mlenv_loop.service import config as settings
from mlenv_loop.service import ml_backend, tasks
from mlenv_loop.service.web import application
from mlenv_loop.serving import ServingError
from tests.unit.test_loop_service import GOOD, SECRETS, RecordedLabelStudio

LABEL_CONFIG = (Path(__file__).resolve().parents[2] / "templates/ml-project/label_config.xml").read_text()
SECRET = SECRETS["MLENV_LOOP_WEBHOOK_SECRET"]
LOGGED_IN = {"Authorization": "Basic " + base64.b64encode(f"label-studio:{SECRET}".encode()).decode()}
PROJECT = 7


class Store:
    """What the routes ask of the store: the connected project, and where predictions are logged."""

    def __init__(self) -> None:
        self.predictions: list[dict[str, Any]] = []

    async def project_title(self, project_id: int) -> str | None:
        return "Tickets" if project_id == PROJECT else None

    async def add_predictions(self, rows: list[dict[str, Any]]) -> None:
        self.predictions += rows


class ModelServer:
    """The production model: it calls every text a bug, at version 3 (or serves nothing)."""

    version: str | None = "3"

    def served_version(self, name: str) -> str | None:
        assert name == "tickets"
        return self.version

    def predict(self, name: str, texts: list[str]) -> list[str]:
        if self.version is None:
            raise ServingError("the model server serves no model 'tickets' (yet)", 404)
        return ["bug"] * len(texts)


@pytest.fixture
def backend(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[TestClient, Store, list[tuple]]]:
    store, recorded = Store(), []
    tasks.use(tasks.Context(config=settings.parse(GOOD, SECRETS), store=store, label_studio=None,  # type: ignore[arg-type]
                            datasets=None, runner=None))  # type: ignore[arg-type]  # fmt: skip
    monkeypatch.setattr(ml_backend, "model_server", ModelServer)
    monkeypatch.setattr(ModelServer, "version", "3")

    async def record_later(*args: Any) -> None:
        recorded.append(args)

    async def defer_snapshot(project_id: int, reason: str) -> bool:
        recorded.append(("snapshot", project_id, reason))
        return True

    monkeypatch.setattr(tasks, "record_groups_later", record_later)
    monkeypatch.setattr(tasks, "defer_snapshot", defer_snapshot)
    with TestClient(application()) as client:
        yield client, store, recorded


def task(task_id: int, text: str, meta: dict | None = None) -> dict[str, Any]:
    return {"id": task_id, "data": {"text": text}, "meta": meta or {}, "project": PROJECT}


def predict(client: TestClient, given: list[dict[str, Any]], **extra: Any):
    body = {"tasks": given, "project": f"{PROJECT}.1764700000", "label_config": LABEL_CONFIG, **extra}
    return client.post("/ml/predict", json=body, headers=LOGGED_IN)


def test_health_and_setup_answer_label_studio_with_the_production_version(backend) -> None:
    client, _, _ = backend
    assert client.get("/ml/health", headers=LOGGED_IN).json() == {"status": "UP", "model_class": "mlenv"}
    answer = client.post("/ml/setup", json={"project": f"{PROJECT}.1764700000", "schema": LABEL_CONFIG},
                         headers=LOGGED_IN)  # fmt: skip
    assert answer.status_code == 200 and answer.json() == {"model_version": "tickets v3"}


@pytest.mark.parametrize("path", ["/ml/health", "/ml/setup", "/ml/predict", "/ml/webhook", "/ml/train"])
@pytest.mark.parametrize("password", [None, "wrong", ""])
def test_every_call_needs_label_studios_login(backend, path: str, password: str | None) -> None:
    client, store, recorded = backend
    headers = {} if password is None else {
        "Authorization": "Basic " + base64.b64encode(f"label-studio:{password}".encode()).decode()
    }  # fmt: skip
    if path == "/ml/health":
        answer = client.get(path, headers=headers)
    else:
        answer = client.post(path, headers=headers, json={"project": f"{PROJECT}.1", "action": "START_TRAINING"})
    assert answer.status_code == 401
    assert store.predictions == [] and recorded == []


def test_the_control_group_gets_no_suggestion_and_the_assisted_group_the_production_models(backend) -> None:
    client, store, recorded = backend
    given = [task(number, f"ticket number {number}") for number in range(1, 41)]
    answer = predict(client, given)
    assert answer.status_code == 200
    results = answer.json()["results"]
    assert len(results) == len(given)
    groups = [assist.group_of("tickets", one["data"], 50) for one in given]
    for result, group in zip(results, groups, strict=True):
        if group == "control":
            assert result == []
        else:
            assert result == {"model_version": "tickets v3", "result": [{"from_name": "label", "to_name": "text",
                              "type": "choices", "value": {"choices": ["bug"]}}]}  # fmt: skip
    assert 0 < groups.count("control") < len(given)
    # Every prediction is logged, the control group's too (not shown), with the registry version.
    assert [row["task_id"] for row in store.predictions] == list(range(1, 41))
    assert {row["model_version"] for row in store.predictions} == {"3"}
    assert [row["shown"] for row in store.predictions] == [group == "assisted" for group in groups]
    assert len({row["request_id"] for row in store.predictions}) == 1
    assert store.predictions[0]["input_ref"] == assist.input_reference(given[0]["data"])
    # The groups go on the tasks after the answer.
    assert recorded == [(PROJECT, given, groups, "tickets v3")]


def test_the_group_follows_the_tasks_data_not_its_id_and_keeps_its_share() -> None:
    items = [{"text": f"ticket {number} of the test"} for number in range(4000)]
    first = [assist.group_of("tickets", item, 50) for item in items]
    assert first == [assist.group_of("tickets", dict(reversed(item.items())), 50) for item in items]
    assert abs(first.count("control") / len(items) - 0.5) < 0.03
    assert abs([assist.group_of("tickets", item, 20) for item in items].count("control") / len(items) - 0.2) < 0.03
    assert {assist.group_of("tickets", item, 0) for item in items} == {"assisted"}
    assert {assist.group_of("tickets", item, 100) for item in items} == {"control"}
    # Another experiment (dataset) draws its groups afresh.
    other = [assist.group_of("other", item, 50) for item in items]
    assert 0.4 < sum(a != b for a, b in zip(first, other, strict=True)) / len(items) < 0.6


def test_nothing_in_production_yet_means_no_suggestion_and_nothing_logged(backend, monkeypatch) -> None:
    client, store, recorded = backend
    monkeypatch.setattr(ModelServer, "version", None)
    answer = predict(client, [task(1, "a"), task(2, "b")])
    assert answer.status_code == 200 and answer.json()["results"] == [[], []]
    assert store.predictions == []
    assert recorded[0][3] == "tickets (none in production yet)"


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [({"tasks": "x"}, 400, "tasks must be a list"), ({"project": "99.1"}, 404, "not one this service trains from"),
     ({"project": None}, 400, "names no project"),
     ({"label_config": "<View><Text name='t' value='$text'/></View>"}, 400, "one <Choices> answer per task")],
)  # fmt: skip
def test_bad_predict_calls_are_refused_with_the_reason(backend, body, status, message) -> None:
    client, store, _ = backend
    answer = predict(client, [task(1, "a")], **body)
    assert answer.status_code == status and message in answer.json()["error"]
    assert store.predictions == []


def test_start_training_queues_a_snapshot_and_other_events_are_left_to_the_main_webhook(backend) -> None:
    client, _, recorded = backend
    answer = client.post("/ml/webhook", json={"action": "ANNOTATION_CREATED", "project": {"id": PROJECT}},
                         headers=LOGGED_IN)  # fmt: skip
    assert answer.status_code == 200 and "ignored" in answer.json()["status"] and recorded == []
    answer = client.post("/ml/webhook", json={"action": "START_TRAINING", "project": {"id": PROJECT}},
                         headers=LOGGED_IN)  # fmt: skip
    assert answer.status_code == 201 and recorded == [("snapshot", PROJECT, ml_backend.TRAINING_REQUESTED)]
    assert client.post("/ml/train", json={"project": f"{PROJECT}.1"}, headers=LOGGED_IN).status_code == 201


def test_a_labelling_config_names_where_the_suggestion_goes() -> None:
    target = assist.choice_target(LABEL_CONFIG)
    assert target == assist.ChoiceTarget("label", "text", "text", ("billing", "bug", "feature"))
    for bad, message in [("<View", "not XML"), ("<View><Choices name='a' toName='x'/></View>", "reads task data")]:
        with pytest.raises(assist.UnusableConfig, match=message):
            assist.choice_target(bad)


class AssistedLabelStudio(RecordedLabelStudio):
    """Adds the ML backend and project calls."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.backends: dict[int, dict[str, Any]] = {}
        self.settings: dict[int, dict[str, Any]] = {}

    def projects(self) -> list[dict[str, Any]]:
        return [{**project, **self.settings.get(project["id"], {})} for project in super().projects()]

    def ml_backends(self, project_id: int) -> list[dict[str, Any]]:
        return [backend for backend in self.backends.values() if backend["project"] == project_id]

    def create_ml_backend(self, body: dict[str, Any]) -> dict[str, Any]:
        self.calls.append(("create backend", body["project"]))
        backend = {key: value for key, value in body.items() if key != "basic_auth_pass"}
        self.backends[len(self.backends) + 100] = backend = {**backend, "id": len(self.backends) + 100}
        # As Label Studio does for a new backend: a webhook to <url>/webhook for every action.
        self.hooks[999] = {"id": 999, "project": body["project"], "url": body["url"] + "/webhook"}
        return backend

    def update_ml_backend(self, backend_id: int, body: dict[str, Any]) -> dict[str, Any]:
        self.calls.append(("update backend", backend_id))
        return self.backends[backend_id]

    def delete_ml_backend(self, backend_id: int) -> None:
        self.calls.append(("delete backend", backend_id))
        del self.backends[backend_id]

    def update_project(self, project_id: int, body: dict[str, Any]) -> dict[str, Any]:
        self.calls.append(("update project", project_id, body))
        self.settings[project_id] = body
        return body


def test_connect_makes_the_service_the_ml_backend_of_assisted_projects_once(monkeypatch) -> None:
    monkeypatch.setattr(tasks, "_backends_given_password", set())
    config = settings.parse(GOOD, SECRETS)
    label_studio = AssistedLabelStudio({1: "Tickets"}, [])
    found = tasks.Context(config, store=None, label_studio=label_studio, datasets=None, runner=None)  # type: ignore[arg-type]
    (project,) = tasks.connect_projects(found)
    tasks.connect_ml_backend(found, project, True)
    assert label_studio.calls[1:] == [
        ("create backend", 1), ("delete", 999),
        ("update project", 1, {"model_version": "mlenv", "show_collab_predictions": True}),
    ]  # fmt: skip
    (backend,) = label_studio.backends.values()
    assert backend["url"] == "http://127.0.0.1:8095/ml" and backend["auth_method"] == "BASIC_AUTH"
    assert backend["basic_auth_user"] == "label-studio"
    label_studio.calls.clear()
    (project,) = tasks.connect_projects(found)
    tasks.connect_ml_backend(found, project, True)
    assert label_studio.calls == []  # nothing to do twice
    # After a restart (a rotated secret), the password is given again, once.
    monkeypatch.setattr(tasks, "_backends_given_password", set())
    tasks.connect_ml_backend(found, project, True)
    assert label_studio.calls == [("update backend", backend["id"])]
    # Taken out of the experiment: the backend goes.
    label_studio.calls.clear()
    tasks.connect_ml_backend(found, project, False)
    assert label_studio.calls == [("delete backend", backend["id"])] and label_studio.backends == {}


def test_assist_settings_are_checked() -> None:
    projects = [{**GOOD["projects"][0], "assist": "yes", "control_percent": 101}]
    with pytest.raises(settings.ConfigProblem) as raised:
        settings.parse({**GOOD, "projects": projects}, SECRETS)
    assert "projects[0].assist: 'yes'" in str(raised.value) and "projects[0].control_percent: 101" in str(raised.value)
    parsed = settings.parse(GOOD, SECRETS)
    assert parsed.projects[0].assist and parsed.projects[0].control_percent == 50
    assert parsed.model_server.url == "http://127.0.0.1:8090" and parsed.ml_backend_url == "http://127.0.0.1:8095/ml"
