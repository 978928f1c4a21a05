"""The ML loop on the shared stack, as a team drives it: labels in Label Studio become dataset
versions in the bucket (`mlenv dataset`), and the starter project's entry point trains on them
from outside the host with its own pinned requirements, registering behind the gate."""

from __future__ import annotations

import hashlib
import json
import subprocess

import pytest

from tests.e2e.clients import OUTSIDE, mlflow_api, s3
from tests.e2e.conftest import DOMAIN, Stack
from tests.e2e.labelling import Project
from tests.helpers import runbooks
from tests.helpers.template_venv import TEMPLATE, template_python

DATASET = "tickets-e2e"
MODEL = "tickets-e2e"
FIRST_LABELS = 30
MORE_LABELS = 240
TRAIN_TIMEOUT_S = 300
RUNBOOK = "models.md"


@pytest.fixture(scope="module")
def project(stack: Stack) -> Project:
    found = Project(stack, "tickets e2e")
    found.label(FIRST_LABELS)
    return found


def mlenv_json(stack: Stack, *args: str) -> object:
    result = stack.mlenv(*args, "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout)


def bucket_keys(stack: Stack, prefix: str) -> list[str]:
    listed = s3(stack, "admin").list_objects_v2(Bucket="datasets", Prefix=prefix)
    return sorted(found["Key"] for found in listed.get("Contents", []))


@pytest.fixture(scope="module")
def first_version(stack: Stack, project: Project) -> dict:
    freeze = runbooks.block(RUNBOOK, "Freeze the labels of a project")
    result = runbooks.run(freeze, stack.env, inputs={"PROJECT": str(project.id), "DATASET": DATASET})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "new version" in result.stdout
    return mlenv_json(stack, "dataset", "show", f"{DATASET}@candidate")  # type: ignore[return-value]


def test_a_snapshot_is_a_content_addressed_version_in_the_bucket(stack, project, first_version):
    version = first_version["version"]
    assert first_version["counts"]["tasks"] == FIRST_LABELS
    assert first_version["counts"]["annotations"] == FIRST_LABELS
    assert first_version["counts"]["train"] + first_version["counts"]["test"] == FIRST_LABELS
    expected = {label: [label for _, label in project.tasks[:FIRST_LABELS]].count(label) for _, label in project.tasks}
    assert first_version["labels"] == {label: count for label, count in sorted(expected.items()) if count}
    assert first_version["source"]["project_id"] == project.id
    assert first_version["tags"] == ["candidate"]
    keys = bucket_keys(stack, f"{DATASET}/versions/{version}/")
    assert keys == [f"{DATASET}/versions/{version}/manifest.json", f"{DATASET}/versions/{version}/tasks.jsonl"]
    body = s3(stack, "admin").get_object(Bucket="datasets", Key=keys[1])["Body"].read()
    assert hashlib.sha256(body).hexdigest() == first_version["files"][0]["sha256"]
    assert hashlib.sha256(body).hexdigest().startswith(version)


def test_the_same_annotations_are_the_same_version_and_nothing_is_written(stack, project, first_version):
    before = s3(stack, "admin").list_object_versions(Bucket="datasets", Prefix=f"{DATASET}/versions/")
    result = stack.mlenv("dataset", "snapshot", str(project.id), "--dataset", DATASET)
    assert result.returncode == 0, result.stdout
    assert f"unchanged: the same annotations are already version {first_version['version']}" in result.stdout
    after = s3(stack, "admin").list_object_versions(Bucket="datasets", Prefix=f"{DATASET}/versions/")
    assert len(after.get("Versions", [])) == len(before.get("Versions", []))  # not even a new object version


def test_new_labels_are_a_new_version_listed_after_the_first_and_tags_move(stack, project, first_version):
    project.label(5)
    result = stack.mlenv("dataset", "snapshot", str(project.id), "--dataset", DATASET)
    assert result.returncode == 0, result.stdout
    listed = mlenv_json(stack, "dataset", "list", DATASET)
    assert listed[0]["version"] == first_version["version"]
    assert listed[-1]["counts"]["tasks"] == FIRST_LABELS + 5
    newest = listed[-1]["version"]
    assert stack.mlenv("dataset", "tag", f"{DATASET}@{newest[:8]}", "stable").returncode == 0
    assert mlenv_json(stack, "dataset", "show", f"{DATASET}@stable")["version"] == newest
    overview = mlenv_json(stack, "dataset", "list")
    assert {"dataset": DATASET, "versions": 2, "latest": newest, "tags": {"candidate": first_version["version"],
            "stable": newest}} in overview  # fmt: skip
    table = stack.mlenv("dataset", "list", DATASET)
    assert first_version["version"] in table.stdout and "stable" in table.stdout


def test_pull_writes_the_files_its_manifest_names(stack, first_version, tmp_path):
    result = stack.mlenv("dataset", "pull", f"{DATASET}@candidate", "--to", str(tmp_path))
    assert result.returncode == 0, result.stdout
    folder = tmp_path / f"{DATASET}@{first_version['version']}"
    data = (folder / "tasks.jsonl").read_bytes()
    assert hashlib.sha256(data).hexdigest() == first_version["files"][0]["sha256"]
    assert len(data.splitlines()) == FIRST_LABELS
    again = stack.mlenv("dataset", "pull", f"{DATASET}@candidate", "--to", str(tmp_path))
    assert again.returncode == 1 and "exists already" in again.stdout
    assert (folder / "tasks.jsonl").read_bytes() == data


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["snapshot", "999999"], "Label Studio has no projects/999999 (404)"),
        (["snapshot", "1", "--dataset", "Bad_Name"], "dataset name 'Bad_Name'"),
        (["snapshot", "1", "--tag", "1234abcd"], "tag '1234abcd'"),
        (["show", f"{DATASET}@0000000000"], f"{DATASET} has no version starting with '0000000000'"),
        (["show", f"{DATASET}@nosuchtag"], f"{DATASET} has no tag 'nosuchtag'"),
        (["show", "no-such-dataset"], "dataset 'no-such-dataset' has no versions"),
        (["tag", DATASET, "stable"], "say which version to tag"),
        (["tag", f"{DATASET}@candidate", "Not A Tag"], "tag 'Not A Tag'"),
    ],
)
def test_bad_inputs_get_a_clear_error_and_change_nothing(stack, first_version, args, message):
    before = bucket_keys(stack, "")
    result = stack.mlenv("dataset", *args)
    assert result.returncode == 1, result.stdout
    assert message in result.stdout, result.stdout
    assert "Traceback" not in result.stdout + result.stderr
    assert bucket_keys(stack, "") == before


# --- training from outside, with the starter project's own requirements -----------------------------


def train(stack: Stack, *args: str, job: str) -> subprocess.CompletedProcess[str]:
    """The starter project's entry point, run as a CI job would (its env, the proxy, the platform's CA)."""
    env = {key: value for key, value in stack.env.items() if not key.startswith(("MLFLOW_", "AWS_"))}
    env.update(
        MLFLOW_TRACKING_URI=stack.url("mlflow", ""),
        MLFLOW_TRACKING_USERNAME="admin",
        MLFLOW_TRACKING_PASSWORD=stack.secret("mlflow/admin_password"),
        MLFLOW_DISABLE_TELEMETRY="true",
        REQUESTS_CA_BUNDLE=stack.ca,
        AWS_ACCESS_KEY_ID=stack.secret("object_store/admin.access_key"),
        AWS_SECRET_ACCESS_KEY=stack.secret("object_store/admin.secret_key"),
        AWS_ENDPOINT_URL_S3=stack.url("s3", ""),
        AWS_CA_BUNDLE=stack.ca,
        AWS_DEFAULT_REGION="us-east-1",
        MLENV_JOB_ID=job,
    )
    return subprocess.run(
        [str(template_python()), str(OUTSIDE), str(TEMPLATE / "train.py"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=TRAIN_TIMEOUT_S,
        check=False,
    )


def decision(result: subprocess.CompletedProcess[str]) -> dict:
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def model_version(stack: Stack, name: str, version: str) -> dict:
    status, found = mlflow_api(stack, f"model-versions/get?name={name}&version={version}")
    assert status == 200, found
    return {**found["model_version"], "tags": {tag["key"]: tag["value"] for tag in found["model_version"]["tags"]}}


def alias_of(stack: Stack, name: str, alias: str) -> str | None:
    status, found = mlflow_api(stack, f"registered-models/alias?name={name}&alias={alias}")
    return found["model_version"]["version"] if status == 200 else None


@pytest.fixture(scope="module")
def first_model(stack: Stack, first_version: dict) -> dict:
    """Trained as the runbook says: in the project's venv, with `mlenv credentials --env`, NAME@VERSION."""
    venv = template_python().parent
    inputs = {"VERSION": first_version["version"], "DATASET": DATASET, "MODEL": MODEL, "MLENV_JOB_ID": "e2e-1",
              "MLENV_TRIGGER": "e2e first labels", "MLFLOW_DISABLE_TELEMETRY": "true",
              "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PATH": f"{venv}:{stack.env['PATH']}"}  # fmt: skip
    shell = {key: value for key, value in stack.env.items() if not key.startswith(("MLFLOW_", "AWS_"))}
    names = " ".join(f"{site}.{DOMAIN}" for site in ("mlflow", "s3", "labels"))
    trained = runbooks.run(runbooks.block(RUNBOOK, "Train on it"), shell, inputs=inputs, hosts=f"127.0.0.1 {names}\n")
    return decision(trained)


def test_the_first_model_is_registered_with_its_lineage_and_becomes_production(stack, project, first_version,
                                                                               first_model):  # fmt: skip
    assert first_model["decision"] == "production", first_model
    assert first_model["dataset_version"] == first_version["version"]
    assert alias_of(stack, MODEL, "production") == first_model["version"]
    tags = model_version(stack, MODEL, first_model["version"])["tags"]
    assert tags["mlenv.dataset"] == DATASET
    assert tags["mlenv.dataset_version"] == first_version["version"]
    assert tags["mlenv.dataset_uri"] == f"s3://datasets/{DATASET}/versions/{first_version['version']}/"
    assert tags["mlenv.label_studio_project"] == str(project.id)
    assert tags["mlenv.annotation_count"] == str(FIRST_LABELS)
    assert tags["mlenv.job"] == "e2e-1" and tags["mlenv.trigger"] == "e2e first labels"
    assert tags["mlenv.code_version"].startswith("template-sha256:")
    assert tags["mlenv.gate.decision"] == "production" and tags["mlenv.gate.production_version"] == "none"
    assert float(tags["mlenv.gate.score"]) == pytest.approx(first_model["score"], abs=1e-6)


@pytest.fixture(scope="module")
def second_model(stack: Stack, project: Project, first_model: dict, tmp_path_factory: pytest.TempPathFactory) -> dict:
    project.label(MORE_LABELS - project.labelled)
    result = stack.mlenv("dataset", "snapshot", str(project.id), "--dataset", DATASET, "--json")
    assert result.returncode == 0, result.stdout
    version = json.loads(result.stdout)["version"]
    folder = tmp_path_factory.mktemp("pulled")
    assert stack.mlenv("dataset", "pull", f"{DATASET}@{version}", "--to", str(folder)).returncode == 0
    pulled = folder / f"{DATASET}@{version}"
    return decision(
        train(stack, "--dataset", str(pulled), "--model-name", MODEL, "--trigger", "more labels", job="e2e-2")
    )


def test_a_better_model_on_more_labels_moves_production_and_remembers_the_one_before(stack, first_model,
                                                                                     second_model):  # fmt: skip
    assert second_model["decision"] == "production", second_model
    assert second_model["score"] > second_model["production_score"]
    assert alias_of(stack, MODEL, "production") == second_model["version"]
    tags = model_version(stack, MODEL, second_model["version"])["tags"]
    assert tags["mlenv.gate.production_version"] == first_model["version"]
    assert tags["mlenv.previous_production"] == first_model["version"]
    assert tags["mlenv.annotation_count"] == str(MORE_LABELS)


def test_a_model_not_better_by_the_margin_is_challenger_and_production_stays(stack, second_model):
    uri = f"s3://datasets/{DATASET}/versions/{second_model['dataset_version']}/"
    third = decision(train(stack, "--dataset", uri, "--model-name", MODEL, "--margin", "0.5", job="e2e-3"))
    assert third["decision"] == "challenger", third
    assert third["production_score"] == pytest.approx(second_model["score"])  # the same split, the same model
    assert alias_of(stack, MODEL, "production") == second_model["version"]
    assert alias_of(stack, MODEL, "challenger") == third["version"]
    assert model_version(stack, MODEL, third["version"])["tags"]["mlenv.gate.decision"] == "challenger"


def test_a_training_that_fails_leaves_production_untouched(stack, second_model, tmp_path):
    one_label = tmp_path / "one-label.jsonl"
    one_label.write_text("".join(json.dumps({"text": f"ticket {n}", "label": "bug"}) + "\n" for n in range(40)))
    result = train(stack, "--dataset", str(one_label), "--model-name", MODEL, job="e2e-fail")
    assert result.returncode == 1
    assert "at least two labels" in result.stderr
    missing = train(stack, "--dataset", f"s3://datasets/{DATASET}/versions/0000000000000000/", "--model-name", MODEL,
                    job="e2e-missing")  # fmt: skip
    assert missing.returncode == 1 and "has no manifest.json" in missing.stderr, missing.stderr[-2000:]
    assert alias_of(stack, MODEL, "production") == second_model["version"]


# --- lineage and rollback (last in this module: rollback moves production) ---------------------------


def test_lineage_names_every_link_from_the_production_model_back_to_the_labels(stack, project, first_model,
                                                                               second_model):  # fmt: skip
    links = mlenv_json(stack, "lineage", f"{MODEL}@production")
    assert links["model"]["version"] == second_model["version"] and "production" in links["model"]["aliases"]
    assert links["gate"]["decision"] == "production" and links["gate"]["replaced_version"] == first_model["version"]
    assert links["run"]["id"] == second_model["run_id"] and links["run"]["job"] == "e2e-2"
    assert links["run"]["metrics"]["f1_macro"] == pytest.approx(second_model["score"])
    assert links["dataset"]["version"] == second_model["dataset_version"]
    assert links["dataset"]["counts"]["tasks"] == MORE_LABELS
    assert links["labels"]["project_id"] == project.id and links["labels"]["project_title_now"] == "tickets e2e"
    assert sum(links["labels"]["labels"].values()) == MORE_LABELS
    assert links["code"]["version"].startswith("template-sha256:")
    shown = runbooks.run(runbooks.block(RUNBOOK, "Where did the production model come from"), stack.env,
                         inputs={"MODEL": MODEL})  # fmt: skip
    assert shown.returncode == 0, shown.stdout + shown.stderr
    text, _, printed_json = shown.stdout.partition("\n{")
    again = json.loads("{" + printed_json)  # the page's --json: the same chain (what is served may move)
    assert {key: again[key] for key in ("model", "gate", "run", "dataset", "code")} == {
        key: links[key] for key in ("model", "gate", "run", "dataset", "code")
    }
    for link in (f"version {second_model['version']}", f"{DATASET}@{second_model['dataset_version']}", "labels:",
                 "code: template-sha256:"):  # fmt: skip
        assert link in text, text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["lineage", "no-such-model"], "model no-such-model has no version with the alias 'production'"),
        (["lineage", f"{MODEL}/999"], f"model {MODEL} has no version 999"),
        (["lineage", "a@@b"], "give MODEL, MODEL@ALIAS or MODEL/VERSION"),
        (["model", "rollback", "no-such-model"], "model no-such-model has no version with the alias 'production'"),
    ],
)
def test_bad_model_references_get_a_clear_error(stack, second_model, args, message):
    result = stack.mlenv(*args)
    assert result.returncode == 1, result.stdout
    assert message in result.stdout and "Traceback" not in result.stdout + result.stderr
    assert alias_of(stack, MODEL, "production") == second_model["version"]


def test_rollback_moves_production_back_to_the_version_it_replaced(stack, first_model, second_model):
    result = runbooks.run(runbooks.block(RUNBOOK, "Roll back"), stack.env, inputs={"MODEL": MODEL})
    assert result.returncode == 0, result.stdout
    assert f"from version {second_model['version']} back to version {first_model['version']}" in result.stdout
    assert alias_of(stack, MODEL, "production") == first_model["version"]
    again = stack.mlenv("model", "rollback", MODEL)
    assert again.returncode == 1 and "there is none to roll back to" in again.stdout, again.stdout
    assert alias_of(stack, MODEL, "production") == first_model["version"]
