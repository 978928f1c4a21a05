"""The trigger service's parts that need no database: its settings (every problem named), what a
run's unit says of it, GitLab's pipeline trigger (against a local stand-in of GitLab's endpoint
that checks method, path, token and variables), and the web app's refusals, which happen before
anything is stored (the context's store fails the test if it is touched)."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qs

import pytest
from starlette.testclient import TestClient

from mlenv_loop.service import config as settings
from mlenv_loop.service import tasks
from mlenv_loop.service.runners import Argo, GitLab, Progress, RunnerError, parse_show, progress_of, trigger_form
from mlenv_loop.service.store import run_id
from mlenv_loop.service.web import application
from mlenv_loop.webhooks import SECRET_HEADER

SECRETS = {variable: f"value-of-{name}" for name, variable in settings.SECRETS.items()}
GOOD = {
    "webhook_url": "http://127.0.0.1:8095/webhooks/label-studio",
    "label_studio_url": "http://127.0.0.1:8080",
    "s3": {"endpoint": "http://127.0.0.1:8333"},
    "projects": [{"title": "Tickets", "dataset": "tickets", "model": "tickets", "every": 3}],
    "runner": {"kind": "systemd"},
}


def test_good_settings_parse_with_their_defaults() -> None:
    config = settings.parse(GOOD, SECRETS)
    assert config.port == 8095 and config.holdout_percent == 20 and config.bucket == "datasets"
    assert config.projects[0].every == 3 and config.projects[0].after_seconds == 600
    assert config.project_titled("Tickets") is config.projects[0] and config.project_titled("Other") is None
    assert config.runner.kind == "systemd" and config.webhook_secret == SECRETS["MLENV_LOOP_WEBHOOK_SECRET"]


def test_every_problem_is_named_at_once() -> None:
    bad = {**GOOD, "port": 80, "label_studio_url": "ftp://x", "holdout_percent": 0,
           "projects": [{"title": "T", "dataset": "Bad_Name", "model": "m"}, {"title": "T", "dataset": "d"},
                        {"title": "T", "dataset": "d2", "model": "m2", "every": 0}],
           "runner": {"kind": "cron"}}  # fmt: skip
    with pytest.raises(settings.ConfigProblem) as raised:
        settings.parse(bad, {})
    message = str(raised.value)
    for expected in ("port: 80", "label_studio_url: 'ftp://x'", "holdout_percent: 0", "projects[0].dataset",
                     "projects[1]: needs title, dataset and model", "projects[2].every", "title 'T' is listed twice",
                     "runner.kind: 'cron'", "MLENV_LOOP_WEBHOOK_SECRET is not set"):  # fmt: skip
        assert expected in message, message


def test_the_gitlab_runner_needs_its_project() -> None:
    runner = {"kind": "gitlab", "url": "https://gitlab.example.com", "project": "not a path"}
    with pytest.raises(settings.ConfigProblem, match=r"runner\.project: 'not a path'"):
        settings.parse({**GOOD, "runner": runner}, SECRETS)


def test_the_argo_runner_needs_kubernetes_names() -> None:
    runner = {"kind": "argo", "api_url": "https://k8s.example.com", "namespace": "Team_A", "template": "train"}
    with pytest.raises(settings.ConfigProblem, match=r"runner\.namespace: 'Team_A'"):
        settings.parse({**GOOD, "runner": runner}, SECRETS)
    found = settings.parse({**GOOD, "runner": {**runner, "namespace": "team"}},
                           {**SECRETS, settings.KUBERNETES_TOKEN_ENV: "token"})  # fmt: skip
    assert found.runner.kind == "argo" and found.runner.namespace == "team" and found.runner.token == "token"


def test_without_its_kubernetes_token_yet_an_argo_run_fails_saying_what_gives_it() -> None:
    # The token is made on the cluster after the service's first converge (mlenv up hands it over).
    runner = {"kind": "argo", "api_url": "https://127.0.0.1:1", "namespace": "team", "template": "train"}
    found = settings.parse({**GOOD, "runner": runner}, SECRETS)
    with pytest.raises(RunnerError, match="no Kubernetes token yet: `mlenv up` gives the service"):
        asyncio.run(Argo(found.runner).start(RUN))


def test_the_settings_file_must_exist_and_be_json(tmp_path: Path) -> None:
    with pytest.raises(settings.ConfigProblem, match="cannot read the settings file"):
        settings.load({settings.CONFIG_ENV: str(tmp_path / "missing.json")})
    (tmp_path / "loop.json").write_text("{not json")
    with pytest.raises(settings.ConfigProblem, match="cannot read the settings file"):
        settings.load({settings.CONFIG_ENV: str(tmp_path / "loop.json")})


def test_a_run_id_follows_from_its_model_and_version() -> None:
    assert run_id("tickets", "0123456789abcdef") == "tickets-0123456789ab"


GONE = "the unit is gone: the host restarted, or it never started"


@pytest.mark.parametrize(
    ("shown", "expected"),
    [
        ("InvocationID=\nActiveState=inactive\n", Progress("failed", GONE)),
        ("InvocationID=ab\nActiveState=activating\nSubState=start\n", Progress("running", "activating/start")),
        ("InvocationID=ab\nActiveState=active\nSubState=exited\nResult=success\n"
         "ExecMainExitTimestamp=Wed 2026-12-02 05:23:16 UTC\n",
         Progress("succeeded", finished_at=datetime(2026, 12, 2, 5, 23, 16, tzinfo=UTC))),
        ("InvocationID=ab\nActiveState=failed\nResult=exit-code\nExecMainStatus=1\n",
         Progress("failed", "exit-code, exit status 1")),
    ],
)  # fmt: skip
def test_what_a_run_unit_says_of_the_run(shown: str, expected: Progress) -> None:
    assert progress_of(parse_show(shown)) == expected


RUN = {"id": "tickets-0123456789ab", "dataset": "tickets", "version": "0123456789abcdef", "model": "tickets",
       "trigger": "20 new annotation events (every 20)", "handle": ""}  # fmt: skip


class GitLabStandIn(BaseHTTPRequestHandler):
    """GitLab's `POST /api/v4/projects/:id/trigger/pipeline`, checking what it is given."""

    received: ClassVar[list[dict[str, Any]]] = []
    token = "glptt-stand-in"

    def do_POST(self) -> None:
        form = {key: values[0] for key, values in parse_qs(self.rfile.read(int(self.headers["Content-Length"]))
                                                            .decode()).items()}  # fmt: skip
        GitLabStandIn.received.append({"path": self.path, "form": form})
        if self.path != "/api/v4/projects/ml-team%2Ftraining/trigger/pipeline":
            self.answer(404, {"message": "404 Project Not Found"})
        elif form.get("token") != self.token:
            self.answer(401, {"message": "401 Unauthorized"})
        elif "ref" not in form:
            self.answer(400, {"message": "ref is missing"})
        else:
            self.answer(
                201, {"id": 77, "status": "created", "web_url": "http://gitlab.test/ml-team/training/-/pipelines/77"}
            )

    def answer(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def gitlab() -> Iterator[str]:
    GitLabStandIn.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), GitLabStandIn)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def gitlab_runner(url: str, token: str = GitLabStandIn.token, project: str = "ml-team/training") -> GitLab:
    return GitLab(settings.GitLabRunner(kind="gitlab", url=url, project=project, ref="main", token=token))


def test_the_gitlab_runner_triggers_the_pipeline_with_the_runs_variables(gitlab: str) -> None:
    handle = asyncio.run(gitlab_runner(gitlab).start(RUN))
    assert handle == "http://gitlab.test/ml-team/training/-/pipelines/77"
    (call,) = GitLabStandIn.received
    assert call["form"] == {
        "token": GitLabStandIn.token,
        "ref": "main",
        "variables[DATASET_VERSION]": "tickets@0123456789abcdef",
        "variables[MODEL_NAME]": "tickets",
        "variables[TRIGGER]": RUN["trigger"],
        "variables[MLENV_RUN_ID]": RUN["id"],
    }
    assert trigger_form(gitlab_runner(gitlab).settings, RUN) == call["form"]


def test_without_its_token_yet_a_run_fails_saying_what_gives_it(gitlab: str) -> None:
    with pytest.raises(RunnerError, match="no pipeline trigger token yet"):
        asyncio.run(gitlab_runner(gitlab, token="").start(RUN))
    assert GitLabStandIn.received == []


def test_gitlab_refusing_the_trigger_is_a_clear_error(gitlab: str) -> None:
    with pytest.raises(RunnerError, match="GitLab answered 401 to the pipeline trigger"):
        asyncio.run(gitlab_runner(gitlab, token="wrong").start(RUN))
    with pytest.raises(RunnerError, match="GitLab answered 404"):
        asyncio.run(gitlab_runner(gitlab, project="ml-team/other").start(RUN))


class UntouchableStore:
    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the store was touched ({name}) by a request that should change nothing")


@pytest.fixture
def client() -> Iterator[TestClient]:
    config = settings.parse(GOOD, SECRETS)
    tasks.use(tasks.Context(config=config, store=UntouchableStore(), label_studio=None, datasets=None,  # type: ignore[arg-type]
                            runner=None))  # type: ignore[arg-type]  # fmt: skip
    with TestClient(application()) as found:
        yield found


WEBHOOK = "/webhooks/label-studio"
EVENT = {"action": "ANNOTATION_CREATED", "project": {"id": 3}, "annotation": {"id": 9}}


@pytest.mark.parametrize("headers", [{}, {SECRET_HEADER: "wrong"}, {SECRET_HEADER: ""}])
def test_a_webhook_without_the_secret_is_401_and_stores_nothing(client: TestClient, headers: dict[str, str]) -> None:
    answer = client.post(WEBHOOK, json=EVENT, headers=headers)
    assert answer.status_code == 401 and SECRET_HEADER in answer.json()["error"]


@pytest.mark.parametrize(
    ("raw", "message"),
    [(b"{", "not JSON"), (json.dumps({**EVENT, "action": "TASK_CREATED"}).encode(), "action 'TASK_CREATED'"),
     (json.dumps({"action": "ANNOTATION_CREATED", "project": {"id": 3}}).encode(), "has no annotation object")],
)  # fmt: skip
def test_a_malformed_webhook_is_400_with_its_reason_and_stores_nothing(client: TestClient, raw: bytes, message: str):
    answer = client.post(WEBHOOK, content=raw, headers={SECRET_HEADER: SECRETS["MLENV_LOOP_WEBHOOK_SECRET"]})
    assert answer.status_code == 400 and message in answer.json()["error"]


def test_an_oversized_webhook_is_413(client: TestClient) -> None:
    answer = client.post(WEBHOOK, content=b" " * (1 << 20 + 1),
                         headers={SECRET_HEADER: SECRETS["MLENV_LOOP_WEBHOOK_SECRET"]})  # fmt: skip
    assert answer.status_code == 413


@pytest.mark.parametrize("path", ["/api/runs", "/api/runs/tickets-0123456789ab", "/api/projects", "/metrics"])
def test_the_run_listing_needs_the_api_token(client: TestClient, path: str) -> None:
    assert client.get(path).status_code == 401
    assert client.get(path, headers={"Authorization": "Bearer wrong"}).status_code == 401


class RecordedLabelStudio:
    """The service's Label Studio client as connect_projects uses it, with the calls recorded (the real
    API is the e2e tests'): projects by id and title, webhooks by id."""

    def __init__(self, projects: dict[int, str], webhooks: list[dict[str, Any]]) -> None:
        self._projects, self.hooks, self.calls = projects, {hook["id"]: hook for hook in webhooks}, []

    def projects(self) -> list[dict[str, Any]]:
        return [{"id": project_id, "title": title} for project_id, title in self._projects.items()]

    def webhooks(self, project_id: int | None = None) -> list[dict[str, Any]]:
        return [hook for hook in self.hooks.values() if project_id is None or hook["project"] == project_id]

    def create_webhook(self, body: dict[str, Any]) -> dict[str, Any]:
        self.calls.append(("create", body["project"]))
        hook = {**body, "id": max(self.hooks, default=0) + 1}
        self.hooks[hook["id"]] = hook
        return hook

    def update_webhook(self, webhook_id: int, body: dict[str, Any]) -> dict[str, Any]:
        self.calls.append(("update", webhook_id))
        self.hooks[webhook_id] = {**body, "id": webhook_id}
        return self.hooks[webhook_id]

    def delete_webhook(self, webhook_id: int) -> None:
        self.calls.append(("delete", webhook_id))
        del self.hooks[webhook_id]


def test_the_service_keeps_its_webhook_on_the_projects_it_trains_from_and_on_no_other() -> None:
    config = settings.parse(GOOD, SECRETS)
    ours = tasks.webhook_body(config, 0)
    label_studio = RecordedLabelStudio(
        {1: "Tickets", 2: "Removed from the loop", 3: "Tickets", 4: "Someone else's"},
        [
            {**ours, "id": 10, "project": 2},  # left from when project 2 was in loop.projects
            {**ours, "id": 11, "project": 3},  # a second project with a trained title
            {**ours, "id": 12, "project": 4, "url": "https://other.example.com/hook"},  # not ours
        ],
    )
    found = tasks.Context(config, store=None, label_studio=label_studio, datasets=None, runner=None)  # type: ignore[arg-type]
    connected = tasks.connect_projects(found)
    assert connected == [{"id": 1, "title": "Tickets", "webhook_id": 13}]
    assert label_studio.calls == [("create", 1), ("delete", 10), ("delete", 11)]
    assert {hook["project"] for hook in label_studio.hooks.values()} == {1, 4}
    label_studio.calls.clear()
    assert tasks.connect_projects(found) == connected and label_studio.calls == []  # nothing to do twice
