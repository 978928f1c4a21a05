"""The labelling experiment, measured: do the model's suggestions help the people who label, or pull
them toward its mistakes?

From a Label Studio export (tasks, their annotations and ground-truth annotations) and the
predictions the service logged (shown to the assisted group, made but not shown for the
control group), per group: annotations, time per annotation (Label Studio's lead time),
agreement with the model's suggestion and with the gold labels where a reviewer gave one. Then
the effect on the model: the same model trained on an equal number of labels from each group,
both scored on the same held-out items, and the difference with a paired bootstrap interval.

Pure functions: fitting is handed in (`mlenv report labelling` runs the training project's own
code), so every number here can be checked on made-up data.
"""

from __future__ import annotations

import hashlib
import random
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from mlenv_loop import assist
from mlenv_loop.datasets import labels_of, split_of

MIN_TRAIN_PER_GROUP = 10
RESAMPLES = 1000
# Fits one model per named training set ([(text, label)]) and gives each one's predictions for the texts.
Fit = Callable[[dict[str, list[tuple[str, str]]], list[str]], dict[str, list[str]]]


@dataclass(frozen=True)
class Item:
    """One task of the experiment: its group, the first person's label and how long it took, the
    reviewer's gold label and the model's suggestion (shown or not), where they exist."""

    task_id: int
    text: str | None
    input_ref: str
    group: assist.Group
    label: str | None
    lead_time: float | None
    gold: str | None
    suggestion: str | None


def items(
    tasks: list[dict[str, Any]],
    logged: list[dict[str, Any]],
    *,
    experiment: str,
    control_percent: int,
    text_key: str,
) -> list[Item]:
    """The group a task was recorded in (its meta), else the one its data gives; the model's
    suggestion is the latest prediction logged for the same input before the first person's label
    (a prediction made after it suggested nothing to them)."""
    suggested: dict[str, list[tuple[datetime | None, str]]] = {}
    for prediction in sorted(logged, key=lambda found: (str(found.get("made_at")), found.get("id", 0))):
        suggested.setdefault(prediction["input_ref"], []).append(
            (_moment(prediction.get("made_at")), prediction["label"])
        )
    found = []
    for task in sorted(tasks, key=lambda one: int(one["id"])):
        data = task.get("data") or {}
        meta = (task.get("meta") or {}).get(assist.META_KEY) or {}
        group = meta.get("group") if meta.get("group") in assist.GROUPS else None
        annotations = [one for one in task.get("annotations") or [] if not one.get("was_cancelled")]
        people = sorted((one for one in annotations if not one.get("ground_truth")), key=lambda one: one["id"])
        gold = next((labels_of(one.get("result") or []) for one in annotations if one.get("ground_truth")), [])
        first = labels_of(people[0].get("result") or []) if people else []
        reference = assist.input_reference(data)
        text = data.get(text_key)
        found.append(
            Item(
                task_id=int(task["id"]),
                text=text if isinstance(text, str) else None,
                input_ref=reference,
                group=group or assist.group_of(experiment, data, control_percent),
                label=first[0] if first else None,
                lead_time=float(people[0]["lead_time"]) if people and people[0].get("lead_time") is not None else None,
                gold=gold[0] if gold else None,
                suggestion=_before(
                    suggested.get(reference, []), _moment(people[0].get("created_at")) if people else None
                ),
            )
        )
    return found


def _moment(value: Any) -> datetime | None:
    try:
        found = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return found if found.tzinfo else found.replace(tzinfo=UTC)


def _before(made: list[tuple[datetime | None, str]], labelled_at: datetime | None) -> str | None:
    """The latest label predicted before `labelled_at` (any, when either time is unknown)."""
    earlier = [label for at, label in made if labelled_at is None or at is None or at <= labelled_at]
    return earlier[-1] if earlier else None


def share(hits: int, total: int) -> float | None:
    return round(hits / total, 4) if total else None


def group_summary(found: list[Item]) -> dict[str, Any]:
    labelled = [item for item in found if item.label is not None]
    times = [item.lead_time for item in labelled if item.lead_time is not None]
    with_suggestion = [item for item in labelled if item.suggestion is not None]
    with_gold = [item for item in labelled if item.gold is not None]
    return {
        "tasks": len(found),
        "annotations": len(labelled),
        "lead_time_median_s": round(statistics.median(times), 2) if times else None,
        "lead_time_mean_s": round(statistics.fmean(times), 2) if times else None,
        "agreement_with_suggestion": share(sum(i.label == i.suggestion for i in with_suggestion), len(with_suggestion)),
        "with_suggestion": len(with_suggestion),
        "agreement_with_gold": share(sum(item.label == item.gold for item in with_gold), len(with_gold)),
        "with_gold": len(with_gold),
    }


def summary(found: list[Item]) -> dict[str, dict[str, Any]]:
    return {group: group_summary([item for item in found if item.group == group]) for group in assist.GROUPS}


def _order(item: Item) -> str:
    return hashlib.sha256(item.input_ref.encode()).hexdigest()


def held_out(found: list[Item], project_id: int, holdout_percent: int) -> tuple[list[tuple[str, str]], str, set[int]]:
    """The items both models are scored on, with their reference label and what it is: the gold
    labels where reviewers gave some, else the control group's labels of the held-out split (the
    labels no suggestion touched)."""
    gold = [item for item in found if item.gold is not None and item.text is not None]
    if gold:
        return [(item.text, item.gold) for item in gold], "gold", {item.task_id for item in gold}  # type: ignore[misc]
    control = [
        item for item in found
        if item.group == "control" and item.label is not None and item.text is not None
        and split_of(project_id, item.task_id, holdout_percent) == "test"
    ]  # fmt: skip
    return [(item.text, item.label) for item in control], "control labels", {item.task_id for item in control}  # type: ignore[misc]


def training_sets(found: list[Item], excluded: set[int]) -> dict[str, list[tuple[str, str]]]:
    """An equal number of labelled items per group, the same ones on every run."""
    pools = {
        group: sorted(
            (item for item in found if item.group == group and item.label is not None and item.text is not None
             and item.task_id not in excluded),
            key=_order,
        )
        for group in assist.GROUPS
    }  # fmt: skip
    size = min(len(pool) for pool in pools.values())
    return {group: [(item.text, item.label) for item in pool[:size]] for group, pool in pools.items()}  # type: ignore[misc]


def macro_f1(truth: list[str], predicted: list[str]) -> float:
    labels = sorted(set(truth) | set(predicted))
    scores = []
    for label in labels:
        true_positive = sum(t == label and p == label for t, p in zip(truth, predicted, strict=True))
        claimed, actual = predicted.count(label), truth.count(label)
        scores.append(2 * true_positive / (claimed + actual) if claimed + actual else 0.0)
    return sum(scores) / len(scores) if scores else 0.0


def accuracy(truth: list[str], predicted: list[str]) -> float:
    return sum(t == p for t, p in zip(truth, predicted, strict=True)) / len(truth) if truth else 0.0


def paired_interval(
    truth: list[str], first: list[str], second: list[str], metric: Callable[[list[str], list[str]], float], seed: int
) -> tuple[float, float]:
    """95 % interval of metric(first) - metric(second), resampling the held-out items (both models
    on the same resample each time)."""
    rng = random.Random(seed)  # noqa: S311 (resampling, not secrecy)
    count = len(truth)
    differences = []
    for _ in range(RESAMPLES):
        picked = [rng.randrange(count) for _ in range(count)]
        sample = [truth[i] for i in picked]
        differences.append(metric(sample, [first[i] for i in picked]) - metric(sample, [second[i] for i in picked]))
    differences.sort()
    return round(differences[int(0.025 * RESAMPLES)], 4), round(differences[int(0.975 * RESAMPLES) - 1], 4)


def effect(found: list[Item], fit: Fit, *, project_id: int, holdout_percent: int, seed: int = 0) -> dict[str, Any]:
    """The model trained on assisted labels against the one trained on control labels."""
    test, reference, excluded = held_out(found, project_id, holdout_percent)
    sets = training_sets(found, excluded)
    size = len(sets["assisted"])
    outcome: dict[str, Any] = {"train_per_group": size, "held_out": len(test), "reference": reference}
    labels_per_set = [len({label for _, label in pairs}) for pairs in sets.values()]
    if size < MIN_TRAIN_PER_GROUP or not test or min(labels_per_set) < 2:
        outcome["verdict"] = (
            f"not measured: {size} labelled item(s) per group outside the held-out set and {len(test)} held-out "
            f"item(s); it needs {MIN_TRAIN_PER_GROUP} per group with two labels at least, and held-out items"
        )
        return outcome
    predicted = fit(sets, [text for text, _ in test])
    truth = [label for _, label in test]
    for name, metric in (("accuracy", accuracy), ("f1_macro", macro_f1)):
        assisted, control = metric(truth, predicted["assisted"]), metric(truth, predicted["control"])
        low, high = paired_interval(truth, predicted["assisted"], predicted["control"], metric, seed)
        outcome[name] = {"assisted": round(assisted, 4), "control": round(control, 4),
                         "difference": round(assisted - control, 4), "ci95": [low, high]}  # fmt: skip
    low, high = outcome["accuracy"]["ci95"]
    if high < 0:
        outcome["verdict"] = "worse: the model trained on the assisted group's labels scores lower"
    elif low > 0:
        outcome["verdict"] = "better: the model trained on the assisted group's labels scores higher"
    else:
        outcome["verdict"] = "no difference shown (the 95 % interval of the accuracy difference spans 0)"
    return outcome
