"""Model-assisted labelling on the shared stack, through Label Studio's own ML backend calls: the
trigger service connects itself as the project's ML backend, "Start training" in Label Studio
trains the project's model, and then Label Studio's predictions are the production model's for
the assisted tasks only, in the configured share, with the group written on every task, the same
for the same data after a restart of the service and a re-import; every prediction is logged."""

from __future__ import annotations

import hashlib
import json
import re
import statistics
import time
from pathlib import Path

import pytest

from tests.e2e.clients import label_studio, mlflow_api, request
from tests.e2e.conftest import LOOP_PROJECTS, Stack
from tests.e2e.labelling import SAMPLE, Project
from tests.e2e.test_loop_service import (
    connected,
    models_auth,
    production_version,
    psql,
    service,
    wait_for_runs,
    wait_served,
)
from tests.helpers import runbooks

ASSISTED = LOOP_PROJECTS[2]
CONTROL_PERCENT = 50
TRAINING_REQUESTED = "training requested in Label Studio"
LABELS = {row["label"] for row in SAMPLE}
# Two tasks' meta written at a time, beside the annotators (and, in CI, the other tests' load).
RECORD_TIMEOUT_S = 300


def ml_backend(stack: Stack, project: Project) -> dict:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        status, found = label_studio(stack, "GET", f"ml/?project={project.id}")
        assert status == 200, found
        if found:
            return found[0]
        time.sleep(2)
    raise AssertionError(f"the service did not become project {project.id}'s ML backend within 90 s")


def every_task(stack: Stack, project: Project) -> list[dict]:
    status, found = label_studio(stack, "GET", f"tasks?project={project.id}&page_size=1000&fields=all")
    assert status == 200, found
    return found["tasks"]


def predictions(stack: Stack, project: Project) -> dict[int, dict]:
    status, found = label_studio(stack, "GET", f"predictions/?project={project.id}")
    assert status == 200, found
    listed = found["results"] if isinstance(found, dict) else found
    return {prediction["task"]: prediction for prediction in listed}


def retrieve_predictions(stack: Stack, project: Project) -> None:
    """Data Manager's "Retrieve predictions" on every task: Label Studio calls the backend's /predict."""
    status, answer = label_studio(stack, "POST", f"dm/actions?id=retrieve_tasks_predictions&project={project.id}",
                                  {"selectedItems": {"all": True, "excluded": []}})  # fmt: skip
    assert status == 200, answer


def groups_recorded(stack: Stack, project: Project, count: int) -> dict[int, dict]:
    """Each task's group as the service wrote it into the task's meta, once `count` tasks have one."""
    deadline, found = time.monotonic() + RECORD_TIMEOUT_S, {}
    while time.monotonic() < deadline:
        found = {task["id"]: task["meta"]["mlenv"] for task in every_task(stack, project)
                 if "mlenv" in (task.get("meta") or {})}  # fmt: skip
        if len(found) >= count:
            return found
        time.sleep(2)
    raise AssertionError(f"{len(found)} of {count} tasks have their group recorded after {RECORD_TIMEOUT_S} s")


@pytest.fixture(scope="module")
def project(stack: Stack) -> Project:
    return connected(stack, ASSISTED["title"])


@pytest.fixture(scope="module")
def trained(stack: Stack, project: Project) -> dict:
    """40 labels, then "Start training" in Label Studio (its ML API calls the backend)."""
    backend = ml_backend(stack, project)
    project.label(40)
    status, answer = label_studio(stack, "POST", f"ml/{backend['id']}/train", {})
    assert status == 200, answer
    (run,) = wait_for_runs(stack, project, 1)
    assert run["state"] == "succeeded", run
    wait_served(stack, run["result"]["version"], ASSISTED["model"])
    return run


def test_the_service_is_the_projects_ml_backend_and_trains_when_label_studio_asks(stack, project, trained):
    backend = ml_backend(stack, project)
    assert backend["url"].endswith("/ml") and backend["title"] == "mlenv"
    assert backend["auth_method"] == "BASIC_AUTH" and backend["basic_auth_user"] == "label-studio"
    assert backend["basic_auth_pass_is_set"] and "basic_auth_pass" not in backend
    assert label_studio(stack, "GET", f"projects/{project.id}")[1]["model_version"] == "mlenv"
    # Label Studio's automatic webhook to <backend>/webhook is gone: the service's own brings the events.
    hooks = label_studio(stack, "GET", f"webhooks/?project={project.id}")[1]
    assert [hook["url"] for hook in hooks if hook["url"].endswith("/ml/webhook")] == []
    assert trained["trigger"] == TRAINING_REQUESTED and trained["annotations"] == 40
    assert trained["result"]["decision"] == "production"


@pytest.fixture(scope="module")
def suggested(stack: Stack, project: Project, trained: dict) -> dict[int, dict]:
    retrieve_predictions(stack, project)
    return predictions(stack, project)


def test_assisted_tasks_get_the_production_models_suggestion_and_the_control_group_none(stack, project, suggested):
    tasks = every_task(stack, project)
    assert len(tasks) == len(SAMPLE)
    version = production_version(stack, ASSISTED["model"])
    # The share: 300 tasks, half of them assisted (binomial sd 8.7; the tolerance is 3.5 sd).
    assert abs(len(suggested) - len(tasks) * (100 - CONTROL_PERCENT) / 100) <= 30, len(suggested)
    for prediction in suggested.values():
        assert prediction["model_version"] == f"{ASSISTED['model']} v{version}"
        (region,) = prediction["result"]
        assert region["from_name"] == "label" and region["to_name"] == "text" and region["type"] == "choices"
        assert region["value"]["choices"][0] in LABELS
    status, backend = label_studio(stack, "GET", f"ml/{ml_backend(stack, project)['id']}")
    assert status == 200 and backend["readable_state"] == "Connected", backend


def test_every_task_has_its_group_recorded_and_only_assisted_ones_were_suggested(stack, project, suggested):
    recorded = groups_recorded(stack, project, len(SAMPLE))
    version = production_version(stack, ASSISTED["model"])
    assisted = {task_id for task_id, meta in recorded.items() if meta["group"] == "assisted"}
    assert assisted == set(suggested)
    for task_id, meta in recorded.items():
        expected = f"{ASSISTED['model']} v{version}" if task_id in assisted else None
        assert meta == {"group": "assisted" if task_id in assisted else "control", "model_version": expected}


def test_every_prediction_is_logged_with_its_request_version_and_input(stack, project, suggested):
    rows = psql(f"SELECT task_id, shown, label, model_version FROM mlenv_loop_predictions "
                f"WHERE project_id = {project.id}").splitlines()  # fmt: skip
    logged = {int(task): (shown == "t", label, version) for task, shown, label, version in
              (row.split("|") for row in rows)}  # fmt: skip
    assert len(logged) == len(SAMPLE)  # the control group's predictions too, made but not shown
    assert {task for task, (shown, _, _) in logged.items() if shown} == set(suggested)
    for task_id, prediction in suggested.items():
        assert logged[task_id][1] == prediction["result"][0]["value"]["choices"][0]
    assert {version for _, _, version in logged.values()} == {production_version(stack, ASSISTED["model"])}


def test_the_group_stays_after_a_restart_of_the_service_and_a_re_import(stack, container, project, suggested):
    recorded = groups_recorded(stack, project, len(SAMPLE))
    text_of = {task["id"]: task["data"]["text"] for task in every_task(stack, project)}
    group_of_text = {text_of[task_id]: meta["group"] for task_id, meta in recorded.items()}
    container.run_expect([0], "systemctl restart mlenv-loop")
    again = sorted(group_of_text)[:40]
    status, _ = label_studio(stack, "POST", f"projects/{project.id}/import", [{"text": text} for text in again])
    assert status == 201
    new_ids = sorted(set(text_of_all(stack, project)) - set(text_of))
    assert len(new_ids) == len(again)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and service(stack, "/api/projects")[0] != 200:
        time.sleep(1)
    retrieve_predictions(stack, project)
    now = groups_recorded(stack, project, len(SAMPLE) + len(again))
    texts = text_of_all(stack, project)
    assert {texts[task_id]: now[task_id]["group"] for task_id in new_ids} == {text: group_of_text[text]
                                                                              for text in again}  # fmt: skip
    assert {task_id for task_id in new_ids if now[task_id]["group"] == "assisted"} == {
        task_id for task_id in predictions(stack, project) if task_id in new_ids
    }


def text_of_all(stack: Stack, project: Project) -> dict[int, str]:
    return {task["id"]: task["data"]["text"] for task in every_task(stack, project)}


def test_an_annotator_opening_a_task_gets_its_suggestion(stack, project, suggested, record_property):
    """As the labelling screen does: a task opened that has no prediction yet is sent to the backend
    then (Label Studio → trigger service → model server); the latency Label Studio's API shows for it."""
    texts = [f"{row['text']} (asked again {number})" for number, row in enumerate(SAMPLE[:60])]
    status, _ = label_studio(stack, "POST", f"projects/{project.id}/import", [{"text": text} for text in texts])
    assert status == 201
    before = predictions(stack, project)
    fresh = [task for task in every_task(stack, project) if task["data"]["text"] in set(texts)]
    seconds, answered = [], {}
    for task in fresh:
        started = time.monotonic()
        status, opened = label_studio(stack, "GET", f"tasks/{task['id']}")
        seconds.append(time.monotonic() - started)
        assert status == 200, opened
        answered[task["id"]] = opened.get("predictions") or []
    after = predictions(stack, project)
    suggested_now = {task_id for task_id in after if task_id not in before}
    assert suggested_now == {task_id for task_id, shown in answered.items() if shown}
    assert 0 < len(suggested_now) < len(fresh)
    cut = statistics.quantiles(seconds, n=20)
    record_property("figure: opening a task → its suggestion through Label Studio (p50, p95 ms)",
                    [round(statistics.median(seconds) * 1000), round(cut[18] * 1000)])  # fmt: skip


def test_predictions_served_through_the_proxy_are_logged_and_paired_with_the_label(stack, project, trained):
    """A caller of the models site (the proxy → the inference gateway → MLServer) is answered, the gateway
    logs the answer for the trigger service, and a human label of the same text later pairs with it."""
    text = "the invoice total is wrong after the refund (served)"
    body = {"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": [text]}]}
    status, answer = request(stack, stack.url("models", f"/v2/models/{ASSISTED['model']}/infer"), method="POST",
                             body=body, headers=models_auth(stack))  # fmt: skip
    assert status == 200, answer
    served = answer["outputs"][0]["data"][0]
    reference = hashlib.sha256(json.dumps({"text": text}).encode()).hexdigest()
    query = f"SELECT id, label, model_version FROM mlenv_loop_predictions WHERE input_ref = '{reference}'"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not psql(query):
        time.sleep(1)
    prediction_id, label, version = psql(query).split("|")
    assert label == served and version == trained["result"]["version"]
    assert (
        psql(f"SELECT project_id IS NULL AND NOT shown FROM mlenv_loop_predictions WHERE id = {prediction_id}") == "t"
    )
    status, _ = label_studio(stack, "POST", f"projects/{project.id}/import", [{"text": text}])
    assert status == 201
    (task,) = [task for task in every_task(stack, project) if task["data"]["text"] == text]
    result = [{"from_name": "label", "to_name": "text", "type": "choices", "value": {"choices": ["billing"]}}]
    status, annotation = label_studio(stack, "POST", f"tasks/{task['id']}/annotations", {"result": result})
    assert status == 201
    pair = f"SELECT prediction_id, correct FROM mlenv_loop_live_pairs WHERE annotation_id = {annotation['id']}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not psql(pair):
        time.sleep(1)
    assert psql(pair) == f"{prediction_id}|{'t' if served == 'billing' else 'f'}"


def true_label(text: str) -> str:
    return {row["text"]: row["label"] for row in SAMPLE}[text.split(" (asked again")[0]]


@pytest.fixture(scope="module")
def experiment(stack: Stack, project: Project, suggested: dict[int, dict]) -> dict:
    """Two simulated groups label every task left: the control group gives the right label in 11 s,
    the assisted group takes the model's suggestion, right or wrong, in 4 s; a reviewer gives one
    task in five a gold label. Then `mlenv report labelling`."""
    retrieve_predictions(stack, project)  # the tasks imported since
    shown = predictions(stack, project)
    gold = 0
    for task in every_task(stack, project):
        if task["total_annotations"]:
            continue
        copied = shown.get(task["id"])
        label = copied["result"][0]["value"]["choices"][0] if copied else true_label(task["data"]["text"])
        result = [{"from_name": "label", "to_name": "text", "type": "choices", "value": {"choices": [label]}}]
        body = {"result": result, "lead_time": 4.0 if copied else 11.0}
        assert label_studio(stack, "POST", f"tasks/{task['id']}/annotations", body)[0] == 201
        if task["id"] % 5 == 0:
            truth = [{**result[0], "value": {"choices": [true_label(task["data"]["text"])]}}]
            body = {"result": truth, "ground_truth": True}
            assert label_studio(stack, "POST", f"tasks/{task['id']}/annotations", body)[0] == 201
            gold += 1
    started = time.monotonic()
    reports = set((stack.state / "reports").glob(f"labelling-{project.id}-*"))
    done = runbooks.run(
        runbooks.block("loop.md", "The experiment's report"), stack.env, inputs={"PROJECT": str(project.id)}
    )
    assert done.returncode == 0, done.stdout + done.stderr
    (folder,) = set((stack.state / "reports").glob(f"labelling-{project.id}-*")) - reports
    found = json.loads((folder / "labelling-report.json").read_text())
    found["seconds_measured"], found["gold_given"] = time.monotonic() - started, gold
    return found


def test_the_report_compares_the_groups_labels(experiment):
    assisted, control = experiment["groups"]["assisted"], experiment["groups"]["control"]
    assert assisted["tasks"] + control["tasks"] == assisted["annotations"] + control["annotations"]
    assert assisted["lead_time_median_s"] == 4.0 and control["lead_time_median_s"] == 11.0
    # The assisted group took every suggestion (its first 40 labels came before any model: no suggestion
    # then); the control group's labels agree only where the model is right.
    assert assisted["agreement_with_suggestion"] == 1.0
    assert assisted["annotations"] - 40 <= assisted["with_suggestion"] < assisted["annotations"]
    assert control["agreement_with_suggestion"] < 1.0 and control["with_suggestion"] > 0
    assert control["agreement_with_gold"] == 1.0 > assisted["agreement_with_gold"]
    assert assisted["with_gold"] + control["with_gold"] == experiment["gold_given"]


def test_the_report_finds_that_copied_suggestions_train_a_worse_model(experiment, record_property):
    effect = experiment["effect"]
    assert effect["reference"] == "gold" and effect["held_out"] == experiment["gold_given"]
    assert effect["accuracy"]["difference"] < 0 and effect["accuracy"]["ci95"][1] < 0, effect
    assert effect["verdict"].startswith("worse")
    record_property(
        "figure: mlenv report labelling on the e2e project (s, tasks)",
        [round(experiment["seconds_measured"], 1), sum(g["tasks"] for g in experiment["groups"].values())],
    )


def test_the_report_is_a_page_and_an_mlflow_run(stack, experiment):
    page = Path(experiment["page"])
    assert page.is_file() and "<svg" in page.read_text() and (page.parent / "labelling-report.json").is_file()
    status, listed = mlflow_api(stack, f"artifacts/list?run_id={experiment['mlflow_run_id']}")
    assert status == 200 and {found["path"] for found in listed["files"]} == {
        "labelling-report.html", "labelling-report.json"
    }  # fmt: skip
    status, run = mlflow_api(stack, f"runs/get?run_id={experiment['mlflow_run_id']}")
    assert status == 200 and run["run"]["info"]["status"] == "FINISHED"
    metrics = {metric["key"]: metric["value"] for metric in run["run"]["data"]["metrics"]}
    assert metrics["effect.accuracy.difference"] == experiment["effect"]["accuracy"]["difference"]


def test_a_drop_in_live_accuracy_fires_exactly_one_retrain(stack, project, trained, experiment):
    """The control group's labels, paired with the predictions made (not shown) for the same texts,
    put production's live accuracy below the project's 0.95 (the first model is right about four
    times in five): one run, whose trigger says so; the pairs are logged in MLflow on the version."""
    version = trained["result"]["version"]
    runs = wait_for_runs(stack, project, 2)
    fired = [run for run in runs if run["trigger"].startswith("live accuracy of")]
    assert len(fired) == 1, runs
    assert fired[0]["trigger"].startswith(f"live accuracy of {ASSISTED['model']} v{version} 0.")
    # Over the unshown ones once 50 of them are paired, over all of them before.
    assert re.search(r"< 0\.95 over its latest 50 labelled predictions \((not shown to the annotators|shown or not)\)$",
                     fired[0]["trigger"]), fired[0]["trigger"]  # fmt: skip
    assert fired[0]["state"] == "succeeded", fired[0]
    assert psql(f"SELECT count(*) FROM mlenv_loop_triggers WHERE project_id = {project.id} "
                "AND kind = 'live_accuracy'") == "1"  # fmt: skip
    status, run = mlflow_api(stack, f"runs/get?run_id={trained['result']['run_id']}")
    metrics = {metric["key"]: metric["value"] for metric in run["run"]["data"]["metrics"]}
    assert status == 200 and 0 < metrics["live_accuracy_unassisted"] < 0.95 and metrics["live_pairs"] >= 50
    new = fired[0]["result"]["version"]
    status, found = mlflow_api(stack, f"model-versions/get?name={ASSISTED['model']}&version={new}")
    tags = {tag["key"]: tag["value"] for tag in found["model_version"]["tags"]}
    assert status == 200 and tags["mlenv.trigger"] == fired[0]["trigger"]


def test_a_version_tagged_stable_trains_once(stack, project, experiment):
    before = wait_for_runs(stack, project, 2)
    project_tasks = every_task(stack, project)
    (task,) = project_tasks[:1]
    result = [{"from_name": "label", "to_name": "text", "type": "choices", "value": {"choices": ["bug"]}}]
    assert label_studio(stack, "POST", f"tasks/{task['id']}/annotations", {"result": result})[0] == 201
    done = stack.mlenv("dataset", "snapshot", str(project.id), "--dataset", ASSISTED["dataset"], "--tag", "stable",
                       "--json")  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    version = json.loads(done.stdout)["version"]
    runs = wait_for_runs(stack, project, len(before) + 1)
    fired = [run for run in runs if run["trigger"] == f"dataset version {version} tagged stable"]
    assert len(fired) == 1 and fired[0]["version"] == version and fired[0]["state"] == "succeeded", runs
    time.sleep(12)  # two more ticks: the tag does not fire again
    assert len(wait_for_runs(stack, project, len(before) + 1)) == len(before) + 1


@pytest.mark.parametrize(
    ("project_title", "message"),
    [("tickets, no experiment", "is not in loop.projects of mlenv.yaml"), (None, "Label Studio has no projects/")],
)
def test_a_report_of_a_project_outside_the_experiment_is_a_clear_error(stack, project_title, message):
    project_id = Project(stack, project_title).id if project_title else 999_999
    done = stack.mlenv("report", "labelling", str(project_id))
    assert done.returncode != 0 and message in done.stdout + done.stderr, done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
