"""The labelling experiment's figures on made-up exports, where the right answer is known: each
group's counts, times and agreements, the held-out set both models are scored on, the effect
and its interval (a group that copies wrong suggestions is found worse; equal groups are not
told apart), and the page: charts drawn inline, nothing fetched from elsewhere. The training
project's own `train.py --compare` is run in its own venv."""

from __future__ import annotations

import json
import re
import subprocess

import pytest

from mlenv.report_page import page
from mlenv_loop import assist, experiment
from tests.helpers.template_venv import TEMPLATE, template_python

LABELS = ("billing", "bug", "feature")


def result(label: str) -> list[dict]:
    return [{"from_name": "label", "to_name": "text", "type": "choices", "value": {"choices": [label]}}]


def task(task_id: int, text: str, *, label: str | None = None, lead: float | None = None,
         gold: str | None = None, group: str | None = None) -> dict:  # fmt: skip
    annotations = []
    if label is not None:
        annotations.append({"id": task_id * 10, "result": result(label), "lead_time": lead})
    if gold is not None:
        annotations.append({"id": task_id * 10 + 1, "result": result(gold), "ground_truth": True})
    meta = {"mlenv": {"group": group, "model_version": None}} if group else {}
    return {"id": task_id, "data": {"text": text}, "meta": meta, "annotations": annotations}


def test_items_take_the_recorded_group_the_first_persons_label_the_gold_and_the_suggestion_before_it() -> None:
    tasks = [task(1, "a", label="bug", lead=4.0, gold="billing", group="control"), task(2, "b")]
    tasks[0]["annotations"].append({"id": 99, "result": result("feature")})  # a second person, later
    tasks[0]["annotations"].append({"id": 5, "result": result("feature"), "was_cancelled": True})
    ref = assist.input_reference({"text": "a"})
    logged = [{"id": 1, "input_ref": ref, "label": "feature", "made_at": "2026-12-01T10:00:00"},
              {"id": 2, "input_ref": ref, "label": "bug", "made_at": "2026-12-01T11:00:00"}]  # fmt: skip
    first, second = experiment.items(tasks, logged, experiment="tickets", control_percent=50, text_key="text")
    assert first == experiment.Item(1, "a", ref, "control", "bug", 4.0, "billing", "bug")
    # Labelled at 10:30: the 11:00 prediction suggested nothing to that person, the 10:00 one did.
    tasks[0]["annotations"][0]["created_at"] = "2026-12-01T10:30:00Z"
    (first, _) = experiment.items(tasks, logged, experiment="tickets", control_percent=50, text_key="text")
    assert first.suggestion == "feature"
    # Labelled before any prediction: no suggestion.
    tasks[0]["annotations"][0]["created_at"] = "2026-12-01T09:00:00.123456Z"
    (first, _) = experiment.items(tasks, logged, experiment="tickets", control_percent=50, text_key="text")
    assert first.suggestion is None
    assert second.group == assist.group_of("tickets", {"text": "b"}, 50) and second.label is None
    assert second.suggestion is None and second.gold is None


def test_each_groups_figures() -> None:
    found = [
        experiment.Item(1, "a", "r1", "assisted", "bug", 2.0, "bug", "bug"),
        experiment.Item(2, "b", "r2", "assisted", "bug", 4.0, "billing", "bug"),
        experiment.Item(3, "c", "r3", "assisted", None, None, None, "bug"),
        experiment.Item(4, "d", "r4", "control", "feature", 10.0, "feature", "bug"),
        experiment.Item(5, "e", "r5", "control", "bug", None, None, None),
    ]
    summary = experiment.summary(found)
    assert summary["assisted"] == {
        "tasks": 3, "annotations": 2, "lead_time_median_s": 3.0, "lead_time_mean_s": 3.0,
        "agreement_with_suggestion": 1.0, "with_suggestion": 2, "agreement_with_gold": 0.5, "with_gold": 2,
    }  # fmt: skip
    assert summary["control"]["agreement_with_suggestion"] == 0.0 and summary["control"]["with_suggestion"] == 1
    assert summary["control"]["lead_time_median_s"] == 10.0 and summary["control"]["agreement_with_gold"] == 1.0


def truth_of(text: str) -> str:
    return LABELS[int(text.split()[-1]) % 3]


def simulated(copying_wrong: bool) -> list[experiment.Item]:
    """200 tasks: the control group labels right; the assisted group copies the suggestion, which
    is wrong half the time when `copying_wrong`, else always right. One task in five has gold."""
    found = []
    for number in range(200):
        text = f"ticket {number}"
        group = assist.group_of("tickets", {"text": text}, 50)
        right = truth_of(text)
        wrong = LABELS[(LABELS.index(right) + 1) % 3]
        suggestion = wrong if copying_wrong and number % 2 else right
        label = suggestion if group == "assisted" else right
        gold = right if number % 5 == 0 else None
        found.append(experiment.Item(number + 1, text, f"r{number}", group, label, 3.0, gold, suggestion))
    return found


def memorising_fit(sets: dict[str, list[tuple[str, str]]], texts: list[str]) -> dict[str, list[str]]:
    """A 'model' that has learnt each text's label class by its number's remainder, by majority vote
    of its training labels: wrong labels in training make it wrong on the held-out texts."""
    answers = {}
    for name, pairs in sets.items():
        votes: dict[int, dict[str, int]] = {}
        for text, label in pairs:
            bucket = votes.setdefault(int(text.split()[-1]) % 6, {})
            bucket[label] = bucket.get(label, 0) + 1
        answers[name] = [max((votes.get(int(t.split()[-1]) % 6) or {"?": 1}).items(), key=lambda kv: kv[1])[0]
                         for t in texts]  # fmt: skip
    return answers


def test_a_group_that_copies_wrong_suggestions_trains_a_worse_model_and_the_interval_says_so() -> None:
    found = simulated(copying_wrong=True)
    effect = experiment.effect(found, memorising_fit, project_id=1, holdout_percent=20)
    assert effect["reference"] == "gold" and effect["held_out"] == 40
    assert effect["train_per_group"] == min(
        sum(1 for item in found if item.group == group and item.gold is None) for group in assist.GROUPS
    )
    assert effect["accuracy"]["control"] == 1.0 and effect["accuracy"]["assisted"] < 0.8
    low, high = effect["accuracy"]["ci95"]
    assert low <= effect["accuracy"]["difference"] <= high < 0
    assert effect["verdict"].startswith("worse")
    # The same inputs and seed give the same interval.
    assert experiment.effect(found, memorising_fit, project_id=1, holdout_percent=20) == effect


def test_equal_groups_are_not_told_apart() -> None:
    effect = experiment.effect(simulated(copying_wrong=False), memorising_fit, project_id=1, holdout_percent=20)
    assert effect["accuracy"]["difference"] == 0 and effect["verdict"].startswith("no difference shown")


def test_without_gold_the_control_groups_held_out_labels_are_the_reference() -> None:
    found = [item.__class__(**{**item.__dict__, "gold": None}) for item in simulated(copying_wrong=True)]
    test, reference, excluded = experiment.held_out(found, project_id=1, holdout_percent=20)
    assert reference == "control labels" and test and all(item.group == "control" for item in found
                                                          if item.task_id in excluded)  # fmt: skip
    effect = experiment.effect(found, memorising_fit, project_id=1, holdout_percent=20)
    assert effect["reference"] == "control labels" and effect["verdict"].startswith("worse")


def test_too_few_labels_is_said_not_measured() -> None:
    found = simulated(copying_wrong=True)[:15]
    effect = experiment.effect(found, memorising_fit, project_id=1, holdout_percent=20)
    assert effect["verdict"].startswith("not measured") and "accuracy" not in effect


def test_macro_f1_and_accuracy() -> None:
    truth, predicted = ["a", "a", "b", "c"], ["a", "b", "b", "b"]
    assert experiment.accuracy(truth, predicted) == 0.5
    # a: 2/(1+2)=0.667, b: 2/(3+1)=0.5, c: 0
    assert experiment.macro_f1(truth, predicted) == pytest.approx((2 / 3 + 0.5 + 0) / 3)


def report(found: list[experiment.Item]) -> dict:
    return {
        "project": {"id": 3, "title": "Tickets <assisted>", "dataset": "tickets", "model": "tickets"},
        "control_percent": 50, "model_versions": ["2"], "generated_at": "2026-12-03T10:00:00+00:00",
        "groups": experiment.summary(found),
        "effect": experiment.effect(found, memorising_fit, project_id=1, holdout_percent=20),
    }  # fmt: skip


def test_the_page_draws_its_charts_inline_and_fetches_nothing() -> None:
    html = page(report(simulated(copying_wrong=True)))
    assert html.count("<svg") == 4 and "Tickets &lt;assisted&gt;" in html and "<assisted>" not in html
    assert "worse: the model trained on the assisted group" in html
    assert not re.search(r"""(src|href)=["']?https?:""", html) and "<script" not in html
    assert set(re.findall(r"https?://[^\s\"']+", html)) == {"http://www.w3.org/2000/svg"}


def test_a_page_without_an_effect_says_why() -> None:
    html = page(report(simulated(copying_wrong=True)[:15]))
    assert "not measured" in html and html.count("<svg") == 2


def test_the_training_projects_compare_fits_each_set_and_predicts_the_same_texts(tmp_path) -> None:
    sample = [json.loads(line) for line in (TEMPLATE / "data/sample.jsonl").read_text().splitlines()]
    right = [[row["text"], row["label"]] for row in sample[:150]]
    wrong = [[text, LABELS[(LABELS.index(label) + 1) % 3]] for text, label in right]
    sets = tmp_path / "sets.json"
    sets.write_text(json.dumps({"train": {"right": right, "wrong": wrong}, "test": [r["text"] for r in sample[150:]]}))
    done = subprocess.run([str(template_python()), str(TEMPLATE / "train.py"), "--compare", str(sets)],
                          capture_output=True, text=True, check=False, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr
    predicted = json.loads(done.stdout)["predictions"]
    truth = [row["label"] for row in sample[150:]]
    assert len(predicted["right"]) == len(predicted["wrong"]) == len(truth)
    assert experiment.accuracy(truth, predicted["right"]) > 0.8 > experiment.accuracy(truth, predicted["wrong"])
    sets.write_text(json.dumps({"train": {"one": [["a", "bug"], ["b", "bug"]]}, "test": ["c"]}))
    done = subprocess.run([str(template_python()), str(TEMPLATE / "train.py"), "--compare", str(sets)],
                          capture_output=True, text=True, check=False, timeout=600)  # fmt: skip
    assert done.returncode == 1 and "fewer than two labels" in done.stderr
