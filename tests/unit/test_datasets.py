"""Dataset versions built from Label Studio exports: content addressing, splits, counts, refusals.
(The store itself is exercised against the real object store in tests/e2e.)"""

from __future__ import annotations

import copy
from datetime import UTC, datetime

import pytest

from mlenv_loop import datasets
from mlenv_loop.datasets import DatasetError, check_tag, snapshot, split_of
from mlenv_loop.labelstudio import LabelStudio, LabelStudioError, Project

PROJECT = Project(id=7, title="tickets", label_config="<View/>")


def task(task_id: int, *labels: str, cancelled: bool = False) -> dict:
    return {
        "id": task_id,
        "data": {"text": f"ticket {task_id}"},
        "updated_at": datetime.now(UTC).isoformat(),
        "annotations": [
            {
                "id": task_id * 10 + index,
                "completed_by": 1,
                "was_cancelled": cancelled,
                "created_at": datetime.now(UTC).isoformat(),
                "lead_time": 3.5 + index,
                "result": [{"from_name": "label", "to_name": "text", "type": "choices", "value": {"choices": [label]}}],
            }
            for index, label in enumerate(labels)
        ],
    }


EXPORT = [task(1, "bug"), task(2, "billing"), task(3, "bug", "feature"), task(4), task(5, "bug", cancelled=True)]


def make(tasks: list[dict], **kwargs: object) -> datasets.Snapshot:
    return snapshot(PROJECT, tasks, dataset="tickets", source_url="https://labels.example", **kwargs)  # type: ignore[arg-type]


def test_the_same_annotations_give_the_same_version_whenever_and_in_whatever_order_exported() -> None:
    first = make(EXPORT, now=datetime(2026, 1, 1, tzinfo=UTC))
    again = make(list(reversed(copy.deepcopy(EXPORT))), now=datetime(2026, 6, 1, tzinfo=UTC))
    assert first.version == again.version
    assert first.files == again.files
    assert first.manifest["exported_at"] != again.manifest["exported_at"]
    assert len(first.version) == datasets.VERSION_LENGTH
    assert first.manifest["files"][0]["sha256"].startswith(first.version)


def test_a_changed_or_deleted_annotation_is_a_new_version() -> None:
    changed = copy.deepcopy(EXPORT)
    changed[0]["annotations"][0]["result"][0]["value"]["choices"] = ["billing"]
    assert make(changed).version != make(EXPORT).version
    assert make(EXPORT[1:]).version != make(EXPORT).version


def test_the_manifest_counts_what_a_model_will_learn() -> None:
    manifest = make(EXPORT).manifest
    # Task 4 has no annotation, task 5 only a cancelled one: neither is in the version.
    assert manifest["counts"]["tasks"] == 3
    assert manifest["counts"]["annotations"] == 4
    assert manifest["counts"]["train"] + manifest["counts"]["test"] == 3
    assert manifest["labels"] == {"billing": 1, "bug": 1, "feature": 1}  # task 3's latest says feature
    assert manifest["annotation_ids"] == [10, 20, 30, 31]
    assert manifest["source"] == {"label_studio": "https://labels.example", "project_id": 7, "project_title": "tickets"}
    lines = make(EXPORT).files[datasets.DATA_FILE].decode().splitlines()
    assert [line.count('"lead_time"') for line in lines] == [0, 0, 0]  # how long it took is not the label


def test_a_task_keeps_its_split_in_every_version_and_the_share_follows_the_setting() -> None:
    splits = [split_of(7, task_id, 20) for task_id in range(2000)]
    assert 0.17 < splits.count("test") / len(splits) < 0.23
    assert splits == [split_of(7, task_id, 20) for task_id in range(2000)]
    assert [split_of(8, task_id, 20) for task_id in range(50)] != splits[:50]  # per project


def test_labels_are_read_from_every_kind_of_labelling_result() -> None:
    result = [
        {"value": {"choices": ["a", "b"]}},
        {"value": {"start": 0, "end": 3, "labels": ["span"]}},
        {"value": {"x": 1, "rectanglelabels": ["car"]}},
        {"value": {"text": ["free text is not a label"]}},
    ]
    assert datasets.labels_of(result) == ["a", "b", "span", "car"]


@pytest.mark.parametrize(
    ("kwargs", "tasks", "message"),
    [
        ({"dataset": "Tickets"}, EXPORT, "dataset name 'Tickets'"),
        ({"dataset": "tickets", "holdout_percent": 0}, EXPORT, "holdout percent 0"),
        ({"dataset": "tickets"}, [task(4), task(5, "bug", cancelled=True)], "has no annotations to snapshot"),
    ],
)
def test_bad_inputs_are_refused_with_what_to_change(kwargs: dict, tasks: list[dict], message: str) -> None:
    with pytest.raises(DatasetError, match=message):
        snapshot(PROJECT, tasks, source_url="https://labels.example", **kwargs)


@pytest.mark.parametrize("tag", ["Stable", "1st", "abcdef12", "with space", ""])
def test_tags_that_could_be_misread_are_refused(tag: str) -> None:
    with pytest.raises(DatasetError, match="tag"):
        check_tag(tag)


@pytest.mark.parametrize("tag", ["stable", "release-2026.12", "v1"])
def test_tags_people_use_are_accepted(tag: str) -> None:
    assert check_tag(tag) == tag


def test_label_studio_client_takes_only_web_urls_and_says_when_it_cannot_connect() -> None:
    with pytest.raises(LabelStudioError, match="http:// or https://"):
        LabelStudio("file:///etc/passwd", "token")
    with pytest.raises(LabelStudioError, match="cannot be reached"):
        LabelStudio("http://127.0.0.1:9", "token").project(1)
