"""The loop on its own: annotations made through Label Studio's API reach the trigger service as
Label Studio's real webhooks, become a dataset version in the bucket, start a training run as a
unit on the host, and the model is registered behind the gate, with every link of its lineage.
And the faults: a wrong secret, a malformed body and an unknown project change nothing; the same
annotations never train twice; the service killed (-9) mid-way still gives exactly one run; a
run that fails is recorded as failed and leaves production where it was. The model server, through
the proxy, answers with the production version and follows it, back too after a rollback."""

from __future__ import annotations

import base64
import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from mlenv import health
from tests.e2e.clients import label_studio, mlflow_api, request, s3
from tests.e2e.conftest import HOST, LOOP_PROJECTS, Stack
from tests.e2e.labelling import Project
from tests.helpers import prometheus, runbooks
from tests.helpers.prometheus import wait_until

# The stack's mlenv.yaml lists both projects under loop.projects.
TITLE, FAILING_TITLE = (project["title"] for project in LOOP_PROJECTS[:2])
MODEL = DATASET = LOOP_PROJECTS[0]["model"]
EVERY = LOOP_PROJECTS[0]["every"]
RUN_TIMEOUT_S = 300
RUNBOOK = "loop.md"
HEADER = "X-Mlenv-Webhook-Secret"


def psql(query: str) -> str:
    result = subprocess.run(["podman", "exec", HOST, "runuser", "-u", "postgres", "--", "psql", "-d", "mlenv_loop",
                             "-Atc", query], capture_output=True, text=True, check=True)  # fmt: skip
    return result.stdout.strip()


def service(stack: Stack, path: str, *, method: str = "GET", body: Any = None, headers: dict | None = None):
    token = stack.secret("ml_loop/api_token")
    return request(stack, stack.url("loop", path), method=method, body=body,
                   headers=headers if headers is not None else {"Authorization": f"Bearer {token}"})  # fmt: skip


def runs_of(stack: Stack, project: Project, *, restarting: bool = False) -> list[dict] | None:
    """The project's runs; None while the service restarts (the proxy answers 502), when that is expected."""
    status, answer = service(stack, "/api/runs")
    if restarting and status in {502, 503}:
        return None
    assert status == 200, answer
    return [run for run in answer["runs"] if run["project_id"] == project.id]


def wait_for_runs(stack: Stack, project: Project, count: int, *, restarting: bool = False) -> list[dict]:
    deadline, found = time.monotonic() + RUN_TIMEOUT_S, None
    while time.monotonic() < deadline:
        found = runs_of(stack, project, restarting=restarting)
        if found is not None and len(found) >= count and all(run["state"] in {"succeeded", "failed"} for run in found):
            return found
        time.sleep(2)
    raise AssertionError(f"no {count} finished run(s) of project {project.id} in {RUN_TIMEOUT_S} s: {found}")


def connected(stack: Stack, title: str) -> Project:
    """A new Label Studio project of that title, once the service has put its webhook on it."""
    project = Project(stack, title)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        status, answer = service(stack, "/api/projects")
        assert status == 200, answer
        if any(found["project_id"] == project.id and found["webhook_id"] for found in answer["projects"]):
            return project
        time.sleep(2)
    raise AssertionError(f"the service did not connect project {project.id} ({title}) within 90 s")


@pytest.fixture(scope="module")
def project(stack: Stack) -> Project:
    return connected(stack, TITLE)


@pytest.fixture(scope="module")
def first_run(stack: Stack, project: Project) -> dict:
    project.label(EVERY - 1)
    time.sleep(3)
    assert runs_of(stack, project) == [], "a run started before the threshold"
    crossed = time.monotonic()
    project.label(1)
    (run,) = wait_for_runs(stack, project, 1)
    run["seconds_from_threshold"] = time.monotonic() - crossed
    print(f"threshold annotation → run {run['state']} in {run['seconds_from_threshold']:.1f} s")
    return run


def test_labels_that_cross_the_threshold_train_and_register_a_model(stack, project, first_run):
    assert first_run["state"] == "succeeded", first_run
    assert first_run["trigger"] == f"{EVERY} new annotation events (every {EVERY})"
    assert first_run["annotations"] == EVERY and first_run["runner"] == "systemd"
    assert first_run["log"] == f"journalctl -u mlenv-train@{first_run['id']}.service"
    result = first_run["result"]
    assert result["decision"] == "production" and result["dataset_version"] == first_run["version"]
    status, found = mlflow_api(stack, f"registered-models/alias?name={MODEL}&alias=production")
    assert status == 200 and found["model_version"]["version"] == result["version"]
    tags = {tag["key"]: tag["value"] for tag in found["model_version"]["tags"]}
    assert tags["mlenv.job"] == first_run["id"] and tags["mlenv.dataset_version"] == first_run["version"]
    assert tags["mlenv.label_studio_project"] == str(project.id) and tags["mlenv.annotation_count"] == str(EVERY)
    assert tags["mlenv.trigger"] == first_run["trigger"]
    assert tags["mlenv.code_version"].startswith("template-sha256:")
    # Trained by the runs' own user (the unit's), logging as the runs' own MLflow user.
    status, run = mlflow_api(stack, f"runs/get?run_id={result['run_id']}")
    assert status == 200 and run["run"]["info"]["user_id"] == "mlenv-train", run
    assert mlflow_api(stack, "users/get?username=mlenv-train")[0] == 200


def test_the_dataset_version_is_in_the_bucket_with_the_right_counts(stack, first_run):
    prefix = f"{DATASET}/versions/{first_run['version']}/"
    body = s3(stack, "admin").get_object(Bucket="datasets", Key=prefix + "manifest.json")["Body"].read()
    manifest = json.loads(body)
    assert manifest["counts"]["tasks"] == EVERY and manifest["counts"]["annotations"] == EVERY
    assert manifest["source"]["project_title"] == TITLE


def test_lineage_reaches_the_run_that_trained_it(stack, first_run):
    result = stack.mlenv("lineage", f"{MODEL}@production", "--json")
    assert result.returncode == 0, result.stderr
    links = json.loads(result.stdout)
    assert links["run"]["job"] == first_run["id"] and links["dataset"]["version"] == first_run["version"]
    assert links["labels"]["annotations"] == str(EVERY)


def test_mlenv_runs_lists_the_run_and_shows_its_log(stack, first_run):
    watched = runbooks.run(runbooks.block(RUNBOOK, "Watch the runs"), stack.env, inputs={"RUN": first_run["id"]})
    assert watched.returncode == 0, watched.stdout + watched.stderr
    listed, _, rest = watched.stdout.partition("\n{")  # the list, then the run as JSON, then its log
    assert first_run["id"] in listed and "succeeded" in listed
    assert f'"id": "{first_run["id"]}"' in rest
    assert f"--dataset {DATASET}@{first_run['version']}" in rest
    assert f"→ {first_run['result']['decision']}" in rest


@pytest.mark.parametrize(
    ("args", "message"),
    [(["runs", "show", "nonsense"], "is not a run id"),
     (["runs", "show", "tickets-loop-000000000000"], "there is no run tickets-loop-000000000000")],
)  # fmt: skip
def test_bad_run_references_get_a_clear_error(stack, first_run, args, message):
    result = stack.mlenv(*args)
    assert result.returncode != 0 and message in result.stdout + result.stderr


def counts() -> tuple[str, str]:
    """The events stored, and the snapshots and run starts waiting (procrastinate's periodic jobs left out)."""
    waiting = "SELECT count(*) FROM procrastinate_jobs WHERE status IN ('todo', 'doing') AND task_name IN"
    return psql("SELECT count(*) FROM mlenv_loop_events"), psql(f"{waiting} ('snapshot', 'start_run')")


def webhook(stack: Stack, body: Any, secret: str | None):
    headers = {HEADER: secret} if secret is not None else {}
    return service(stack, "/webhooks/label-studio", method="POST", body=body, headers=headers)


def test_a_wrong_secret_is_401_and_queues_nothing(stack, project, first_run):
    event = {"action": "ANNOTATION_CREATED", "project": {"id": project.id}, "annotation": {"id": 1}}
    before = counts()
    assert webhook(stack, event, "wrong")[0] == 401
    assert webhook(stack, event, None)[0] == 401
    assert counts() == before


def test_a_malformed_body_is_400_and_an_unknown_project_404_and_neither_queues(stack, project, first_run):
    secret = stack.secret("ml_loop/webhook_secret")
    before = counts()
    status, answer = webhook(stack, {"action": "ANNOTATION_CREATED", "project": {"id": project.id}}, secret)
    assert status == 400 and "no annotation object" in answer
    status, answer = webhook(stack, {"action": "ANNOTATION_CREATED", "project": {"id": 999999},
                                     "annotation": {"id": 1}}, secret)  # fmt: skip
    assert status == 404 and "not one this service trains from" in answer
    assert counts() == before


def test_the_same_annotations_do_not_train_again(stack, project, first_run):
    """Events that change nothing (updates that keep the labels) make the same version: no second run."""
    secret = stack.secret("ml_loop/webhook_secret")
    annotation_ids = psql(f"SELECT min(id) FROM (SELECT unnest(annotation_ids) AS id FROM mlenv_loop_events "
                          f"WHERE project_id = {project.id}) ids")  # fmt: skip
    for _ in range(EVERY):
        event = {
            "action": "ANNOTATION_UPDATED",
            "project": {"id": project.id},
            "annotation": {"id": int(annotation_ids)},
        }
        assert webhook(stack, event, secret)[0] == 202
    deadline = time.monotonic() + 60
    while (
        psql(f"SELECT count(*) FROM mlenv_loop_events WHERE project_id = {project.id} AND snapshot_job IS NULL") != "0"
    ):
        assert time.monotonic() < deadline, "the snapshot of the unchanged annotations did not run"
        time.sleep(1)
    time.sleep(3)
    assert [run["id"] for run in runs_of(stack, project)] == [first_run["id"]]


def kill_the_service_when_a_job_is_doing() -> str:
    """kill -9 the service while its worker is inside a job (a snapshot or a run's start)."""
    script = ("for i in $(seq 1200); do state=$(runuser -u postgres -- psql -d mlenv_loop -Atc \"SELECT task_name FROM "
              "procrastinate_jobs WHERE status = 'doing' AND task_name IN ('snapshot', 'start_run') LIMIT 1\"); "
              "if [ -n \"$state\" ]; then systemctl kill --signal=KILL mlenv-loop; echo \"$state\"; exit 0; fi; "
              "sleep 0.05; done; exit 1")  # fmt: skip
    return subprocess.Popen(["podman", "exec", HOST, "bash", "-c", script], stdout=subprocess.PIPE, text=True)


def test_the_service_killed_mid_job_still_gives_exactly_one_run(stack, project, first_run):
    watcher = kill_the_service_when_a_job_is_doing()
    project.label(EVERY)
    killed_in = watcher.communicate(timeout=120)[0].strip()
    assert watcher.returncode == 0 and killed_in in {"snapshot", "start_run"}, "the service was not killed mid-job"
    found = wait_for_runs(stack, project, 2, restarting=True)
    assert len(found) == 2, found
    second = next(run for run in found if run["id"] != first_run["id"])
    assert second["state"] == "succeeded", second
    journal = ["podman", "exec", HOST, "journalctl", "-u", f"mlenv-train@{second['id']}.service", "-o", "cat"]
    invocations = subprocess.run([*journal, "--no-pager"], capture_output=True, text=True, check=True).stdout
    assert invocations.count(f"run {second['id']}:") == 1, invocations
    status, versions = mlflow_api(stack, "model-versions/search", method="GET")
    assert status == 200
    jobs = [tag["value"] for version in versions["model_versions"] if version["name"] == MODEL
            for tag in version.get("tags", []) if tag["key"] == "mlenv.job"]  # fmt: skip
    assert jobs.count(second["id"]) == 1, jobs


def test_a_run_that_fails_is_recorded_alerted_and_production_stays(
    stack, container, project, first_run, record_property
):
    status, before = mlflow_api(stack, f"registered-models/alias?name={MODEL}&alias=production")
    assert status == 200
    failing = connected(stack, FAILING_TITLE)
    failing.label(3, only="billing")
    (run,) = wait_for_runs(stack, failing, 1)
    assert run["state"] == "failed" and "exit status" in run["detail"], run

    # Prometheus scrapes the service's figures and TrainingRunFailed fires for that project only.
    def alerted() -> list[str]:
        return [alert["project"] for alert in prometheus.firing(container, "TrainingRunFailed")]

    projects, waited = wait_until(lambda: FAILING_TITLE in alerted() and alerted(), 120)
    record_property("figure: run failed → TrainingRunFailed firing (s)", waited)
    assert projects and FAILING_TITLE in projects, alerted()
    log = stack.mlenv("runs", "log", run["id"])
    assert "at least two labels" in log.stdout, log.stdout
    status, after = mlflow_api(stack, f"registered-models/alias?name={MODEL}&alias=production")
    assert status == 200 and after["model_version"]["version"] == before["model_version"]["version"]


FOLLOW_TIMEOUT_S = 90


def served_version(stack: Stack, model: str = MODEL) -> str | None:
    status, answer = request(stack, stack.url("models", f"/v2/models/{model}"), headers=models_auth(stack))
    return (answer.get("versions") or [None])[0] if status == 200 else None


def models_auth(stack: Stack) -> dict[str, str]:
    pair = f"mlenv:{stack.secret('model_server/password')}"
    return {"Authorization": "Basic " + base64.b64encode(pair.encode()).decode()}


def wait_served(stack: Stack, version: str, model: str = MODEL, *, slowest: list[float] | None = None) -> float:
    """Seconds until `version` is served; `slowest` gets the longest the server took to answer meanwhile."""
    started = time.monotonic()
    while time.monotonic() - started < FOLLOW_TIMEOUT_S:
        asked = time.monotonic()
        answer = served_version(stack, model)
        if slowest is not None:
            slowest[:] = [max([*slowest, time.monotonic() - asked])]
        if answer == version:
            return time.monotonic() - started
        time.sleep(0.5)
    raise AssertionError(f"{model} version {version} not served within {FOLLOW_TIMEOUT_S} s "
                         f"({served_version(stack, model)})")  # fmt: skip


def production_version(stack: Stack, model: str = MODEL) -> str:
    status, found = mlflow_api(stack, f"registered-models/alias?name={model}&alias=production")
    assert status == 200, found
    return found["model_version"]["version"]


def test_the_production_model_answers_through_the_proxy(stack, first_run):
    wait_served(stack, production_version(stack))
    result = stack.mlenv("model", "predict", MODEL, "I was charged twice for my subscription", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    answer = json.loads(result.stdout)
    assert answer["version"] == production_version(stack)
    assert answer["predictions"][0] in {"billing", "bug", "feature"}
    body = {"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["x"]}]}
    assert request(stack, stack.url("models", f"/v2/models/{MODEL}/infer"), method="POST", body=body)[0] == 401
    # Loading and unloading stay with the follower on the host, whoever asks.
    index = stack.url("models", "/v2/repository/index")
    assert request(stack, index, method="POST", body={}, headers=models_auth(stack))[0] == 403
    links = json.loads(stack.mlenv("lineage", f"{MODEL}@production", "--json").stdout)
    assert links["served"]["this_version"] and links["served"]["url"].endswith(f"/v2/models/{MODEL}/infer")
    asked = runbooks.run(runbooks.block(RUNBOOK, "Ask the served model"), stack.env, inputs={"MODEL": MODEL})
    assert asked.returncode == 0, asked.stdout + asked.stderr
    assert f"{MODEL} version {answer['version']}, served by" in asked.stdout
    assert f"{MODEL} version {answer['version']} (production)" in asked.stdout, asked.stdout


def test_rollback_changes_what_is_served(stack, first_run, record_property):
    """The second run's version made production (by the gate, or as the gate does when it judged it a
    challenger), then `mlenv model rollback`: the server follows both moves."""
    first = first_run["result"]["version"]
    status, found = mlflow_api(stack, "model-versions/search", method="GET")
    assert status == 200
    newer = max(int(version["version"]) for version in found["model_versions"] if version["name"] == MODEL)
    assert newer > int(first), "no second version to promote"
    if production_version(stack) != str(newer):
        assert mlflow_api(stack, "registered-models/alias", method="POST",
                          body={"name": MODEL, "alias": "production", "version": str(newer)})[0] == 200  # fmt: skip
        assert mlflow_api(stack, "model-versions/set-tag", method="POST",
                          body={"name": MODEL, "version": str(newer), "key": "mlenv.previous_production",
                                "value": first})[0] == 200  # fmt: skip
    wait_served(stack, str(newer))
    result = runbooks.run(runbooks.block(RUNBOOK, "Roll back what is served"), stack.env, inputs={"MODEL": MODEL})
    assert result.returncode == 0, result.stdout + result.stderr
    assert production_version(stack) == first
    slowest: list[float] = []
    seconds = wait_served(stack, first, slowest=slowest)
    record_property("figure: mlenv model rollback → previous version served (s)", round(seconds, 1))
    record_property("figure: slowest model server answer while the version loaded (s)", round(slowest[0], 2))
    # The version served answers while the next one loads: `mlenv status` would call it down past its timeout.
    assert slowest[0] < health.TIMEOUT_S, f"the model server stopped answering for {slowest[0]:.1f} s"


def test_a_project_out_of_the_loop_keeps_no_webhook_of_the_service(stack, project):
    """As when a title leaves loop.projects: its project still has the service's webhook, which the
    service takes off at its next look (every 30 s); the projects it trains from keep theirs."""
    status, (ours,) = label_studio(stack, "GET", f"webhooks/?project={project.id}")
    assert status == 200
    outside = Project(stack, "tickets, not in the loop")
    body = {key: ours[key] for key in ("url", "send_payload", "send_for_all_actions", "actions", "headers")}
    status, left = label_studio(stack, "POST", "webhooks/", {**body, "project": outside.id})
    assert status == 201, left
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if not label_studio(stack, "GET", f"webhooks/?project={outside.id}")[1]:
            break
        time.sleep(3)
    assert label_studio(stack, "GET", f"webhooks/?project={outside.id}")[1] == [], "the webhook was left on it"
    assert [hook["id"] for hook in label_studio(stack, "GET", f"webhooks/?project={project.id}")[1]] == [ours["id"]]
    status, answer = service(stack, "/api/projects")
    assert status == 200 and outside.id not in {found["project_id"] for found in answer["projects"]}


def answering_again(stack: Stack, limit_s: float) -> dict[str, float]:
    """Seconds until MLflow, Label Studio and the trigger service each answer 200 through the proxy."""
    checks = {
        "mlflow": lambda: mlflow_api(stack, "experiments/search?max_results=1")[0],
        "label_studio": lambda: label_studio(stack, "GET", "projects?page_size=1")[0],
        "ml_loop": lambda: service(stack, "/api/runs")[0],
    }
    answered: dict[str, float] = {}
    started = time.monotonic()
    while time.monotonic() - started < limit_s and len(answered) < len(checks):
        for name, check in checks.items():
            if name not in answered and check() == 200:
                answered[name] = time.monotonic() - started
        time.sleep(1)
    assert set(answered) == set(checks), f"still down after {limit_s} s: {set(checks) - set(answered)}"
    return answered


# Every service of the stack (the S3 entry is the socket-started way into the object store).
UNITS = ["mlenv-object-store", "mlenv-object-store-s3", "mlenv-mlflow", "mlenv-label-studio", "mlenv-loop",
         "mlenv-model-server", "mlenv-portal", "nginx"]  # fmt: skip


@pytest.mark.parametrize("unit", UNITS)
def test_a_service_killed_is_healthy_again_within_60_s_with_its_data(
    stack, container, project, first_run, unit, record_property
):
    """kill -9 of every process of the unit: `mlenv status` is all green again within 60 s, and what was
    written before (the first run and its model in MLflow, its dataset version, the project's tasks) is there."""
    tasks_before = label_studio(stack, "GET", f"projects/{project.id}")[1]["task_number"]
    container.run_expect([0], f"systemctl kill --signal=KILL {unit}")
    started = time.monotonic()
    healthy = None
    while time.monotonic() - started < 90:
        if stack.mlenv("status").returncode == 0:
            healthy = time.monotonic() - started
            break
        time.sleep(1)
    record_property(f"figure: kill -9 {unit} → mlenv status healthy (s)", healthy and round(healthy, 1))
    assert healthy is not None and healthy <= 60, f"{unit}: not healthy within 60 s ({healthy})"
    status, answer = mlflow_api(stack, f"runs/get?run_id={first_run['result']['run_id']}")
    assert status == 200 and answer["run"]["info"]["status"] == "FINISHED", answer
    assert label_studio(stack, "GET", f"projects/{project.id}")[1]["task_number"] == tasks_before
    manifest = f"{DATASET}/versions/{first_run['version']}/manifest.json"
    assert s3(stack, "admin").head_object(Bucket="datasets", Key=manifest)["ContentLength"] > 0


def test_services_started_while_postgresql_is_away_come_up_once_it_is_back(stack, container, record_property):
    """PostgreSQL stopped for longer than ten failed starts three seconds apart, while MLflow, Label
    Studio and the trigger service restart: they keep trying (no start limit) and answer once it is back."""
    database, apps = "postgresql@15-main", "mlenv-mlflow mlenv-label-studio mlenv-loop"
    container.run_expect([0], f"systemctl stop {database}")
    try:
        container.run_expect([0], f"systemctl restart --no-block {apps}")
        time.sleep(45)  # the fault lasts this long
        states = container.check_output(f"systemctl show -P ActiveState {apps}").split()
        assert "failed" not in states, states
    finally:
        container.run_expect([0], f"systemctl start {database}")
    answered = answering_again(stack, 180)
    record_property("figure: PostgreSQL away 45 s → answering again (s)", {n: round(s, 1) for n, s in answered.items()})


def test_after_postgresql_is_killed_every_service_on_it_answers_again(stack, container, record_property):
    """kill -9 of the database server: systemd starts it again, and MLflow, Label Studio and the trigger
    service answer through the proxy without an `mlenv up` (they reconnect)."""
    unit = "postgresql@15-main"
    before = container.check_output(f"systemctl show -P MainPID {unit}")
    container.run_expect([0], f"kill -9 {before}")
    answered = answering_again(stack, 120)
    record_property("figure: kill -9 PostgreSQL → answering again (s)", {n: round(s, 1) for n, s in answered.items()})
    assert container.check_output(f"systemctl show -P MainPID {unit}") != before


def secret_values(secrets: Path) -> dict[str, str]:
    """Each generated secret (file → value), from the state folder's secrets: one-line values, and the
    long base64 lines of private keys. Certificates and access key ids are not secret."""
    found: dict[str, str] = {}
    for path in sorted(secrets.rglob("*")):
        if not path.is_file() or path.suffix in {".crt", ".csr", ".pub"} or path.name.endswith("access_key"):
            continue
        lines = [line.strip() for line in path.read_text(errors="replace").splitlines() if line.strip()]
        if len(lines) == 1 and len(lines[0]) >= 12:
            found[str(path.relative_to(secrets))] = lines[0]
        for number, line in enumerate(lines):
            if len(lines) > 1 and len(line) >= 40 and not line.startswith("-----") and " " not in line:
                found[f"{path.relative_to(secrets)}:{number}"] = line
    return found


def test_no_secret_in_logs_artifacts_journal_or_command_lines(stack, container, record_property):
    """After the whole e2e run (converges, the loop, faults): the value of every generated secret is
    in no file of the state folder outside its secrets, in no line of the host's journal, and on no
    command line of the host or of this machine, now or sampled during the first converges."""
    secrets = secret_values(stack.state / "secrets")
    assert len(secrets) >= 15, sorted(secrets)
    places: dict[str, str] = {
        str(path.relative_to(stack.state)): path.read_text(errors="replace")
        for path in stack.state.rglob("*")
        if path.is_file() and (stack.state / "secrets") not in path.parents
    }
    assert any(name.startswith("ansible-runner/artifacts/") for name in places), sorted(places)[:20]
    places["journal of the host"] = container.check_output("journalctl --no-pager -o cat")
    places["processes of the host"] = container.check_output("ps -eww -o args")
    controller = subprocess.run(["ps", "-eww", "-o", "args"], capture_output=True, text=True, check=True)
    places["processes of this machine"] = controller.stdout
    # Sampled every 2 s while the first two converges ran: what `label-studio init`, `mlflow db upgrade`
    # and pip were started with.
    assert stack.command_line_samples >= 20 and len(stack.converge_command_lines) >= 100
    # The samples did see the moments a secret would have leaked: Label Studio's initialisation (a minute
    # on the first converge), which takes the administrator's password and token from a file.
    assert any("label-studio init" in line for line in stack.converge_command_lines)
    places["command lines while converging"] = "\n".join(stack.converge_command_lines)
    hits = [f"{name} in {where}" for name, value in secrets.items() for where, text in places.items() if value in text]
    searched_kib = sum(len(text) for text in places.values()) // 1024
    record_property("figure: secret scan (secrets, places, KiB searched, hits)",
                    [len(secrets), len(places), searched_kib, len(hits)])  # fmt: skip
    assert not hits, hits
