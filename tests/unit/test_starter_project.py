"""The starter ML project's files: its entry point reads every kind of dataset it documents (and
refuses what it cannot train on), its pipeline calls that entry point (its serving spec is checked
in tests/k8s). Training itself runs for real in tests/e2e/test_loop.py."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import sys
from pathlib import Path

import pytest
import yaml

from mlenv_loop import datasets
from mlenv_loop.labelstudio import Project
from tests.helpers.template_venv import TEMPLATE

spec = importlib.util.spec_from_file_location("starter_train", TEMPLATE / "train.py")
assert spec and spec.loader
train = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = train  # its dataclasses look their module up
spec.loader.exec_module(train)

SAMPLE = [json.loads(line) for line in (TEMPLATE / "data/sample.jsonl").read_text().splitlines()]


def export(rows: list[dict]) -> list[dict]:
    return [
        {"id": number, "data": {"text": row["text"]},
         "annotations": [{"id": number * 10, "result": [{"from_name": "label", "to_name": "text", "type": "choices",
                                                          "value": {"choices": [row["label"]]}}]}]}
        for number, row in enumerate(rows, start=1)
    ]  # fmt: skip


def pulled(tmp_path: Path, rows: list[dict]) -> Path:
    """What `mlenv dataset pull` writes, made by the same code that makes versions."""
    snap = datasets.snapshot(Project(3, "tickets", ""), export(rows), dataset="tickets", source_url="https://ls")
    folder = tmp_path / f"tickets@{snap.version}"
    folder.mkdir()
    (folder / datasets.DATA_FILE).write_bytes(snap.files[datasets.DATA_FILE])
    (folder / datasets.MANIFEST_FILE).write_text(json.dumps(snap.manifest))
    return folder


def test_the_sample_is_labelled_with_the_labelling_configs_choices() -> None:
    config = (TEMPLATE / "label_config.xml").read_text()
    labels = {row["label"] for row in SAMPLE}
    assert labels == {"billing", "bug", "feature"}
    assert all(f'<Choice value="{label}"/>' in config for label in labels)
    assert len(SAMPLE) == len({row["text"] for row in SAMPLE}) == 300


def test_a_pulled_version_gives_every_task_its_latest_label_on_its_own_split(tmp_path: Path) -> None:
    folder = pulled(tmp_path, SAMPLE[:50])
    found = train.load(str(folder))
    manifest = json.loads((folder / "manifest.json").read_text())
    assert len(found.train[0]) == manifest["counts"]["train"] and len(found.test[0]) == manifest["counts"]["test"]
    assert sorted(found.train[1] + found.test[1]) == sorted(row["label"] for row in SAMPLE[:50])
    tags = train.lineage(found, "e2e")
    assert tags["mlenv.dataset_version"] == manifest["version"] and tags["mlenv.label_studio_project"] == "3"
    assert tags["mlenv.annotation_count"] == "50" and tags["mlenv.trigger"] == "e2e"
    assert tags["mlenv.code_version"].startswith("template-sha256:")


def test_a_version_whose_file_does_not_match_its_manifest_is_refused(tmp_path: Path) -> None:
    folder = pulled(tmp_path, SAMPLE[:20])
    (folder / "tasks.jsonl").write_bytes((folder / "tasks.jsonl").read_bytes().replace(b"bug", b"bag"))
    with pytest.raises(train.TrainingError, match="does not match its manifest"):
        train.load(str(folder))


def test_the_sample_file_splits_the_same_way_every_time() -> None:
    first, second = train.load(str(TEMPLATE / "data/sample.jsonl")), train.load(str(TEMPLATE / "data/sample.jsonl"))
    assert first.test == second.test and 40 < len(first.test[0]) < 80
    assert first.manifest["version"] == hashlib.sha256((TEMPLATE / "data/sample.jsonl").read_bytes()).hexdigest()[:16]


def test_a_named_version_is_a_version_in_the_datasets_bucket(monkeypatch: pytest.MonkeyPatch) -> None:
    assert train.location("tickets@0123456789abcdef") == "s3://datasets/tickets/versions/0123456789abcdef/"
    monkeypatch.setenv("MLENV_DATASET_BUCKET", "team-datasets")
    assert train.location("tickets@0123456789abcdef") == "s3://team-datasets/tickets/versions/0123456789abcdef/"
    assert train.location("s3://other/x/") == "s3://other/x/" and train.location("data/x.jsonl") == "data/x.jsonl"


@pytest.mark.parametrize(
    ("ref", "message"),
    [("nowhere/at-all", "no dataset at nowhere/at-all"), (".", "has no manifest.json")],
)
def test_a_dataset_that_is_not_there_is_a_clear_error(ref: str, message: str, capsys: pytest.CaptureFixture) -> None:
    assert train.main(["--dataset", ref]) == 1
    assert message in capsys.readouterr().err


def test_one_label_is_not_enough_to_train(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    one = tmp_path / "one.jsonl"
    one.write_text("".join(json.dumps({"text": f"t {n}", "label": "bug"}) + "\n" for n in range(30)))
    assert train.main(["--dataset", str(one)]) == 1
    assert "at least two labels" in capsys.readouterr().err


def test_the_pipeline_trains_with_the_trigger_variables_through_the_one_entry_point() -> None:
    pipeline = yaml.safe_load((TEMPLATE / ".gitlab-ci.yml").read_text())
    script = " ".join(pipeline["train"]["script"])
    assert "pip install --quiet --require-hashes -r requirements.lock" in script
    assert 'python train.py --dataset "$DATASET_VERSION" --model-name "$MODEL_NAME" --trigger "$TRIGGER"' in script
    assert {"MODEL_NAME", "TRIGGER"} <= set(pipeline["variables"])
    for job in ("train", "render-serving", "deploy"):
        assert pipeline[job]["stage"] in pipeline["stages"]
    assert (TEMPLATE / "serving/render.py").is_file()
