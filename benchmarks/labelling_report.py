"""What `mlenv report labelling` costs on a project of 1,000 tasks (the sample's texts, relabelled
by two simulated groups, one in five with a gold label), beside its baseline in the same run: the
training project's `train.py --compare` alone, which fits the two models.

    python -m benchmarks.labelling_report [--tasks 1000]

Prints and saves the seconds of each part to benchmarks/results/labelling-report.json. No service
is involved: the export and the logged predictions are made here, as Label Studio and the trigger
service would give them.
"""

from __future__ import annotations

import argparse
import json
import time

from benchmarks.common import report
from mlenv.cli.report import fitter
from mlenv.report_page import page
from mlenv.training_env import starter_dir, starter_python
from mlenv_loop import assist, experiment
from tests.unit.test_labelling_experiment import LABELS, result


def export(count: int) -> tuple[list[dict], list[dict]]:
    sample = [json.loads(line) for line in (starter_dir() / "data/sample.jsonl").read_text().splitlines()]
    tasks, logged = [], []
    for number in range(count):
        row = sample[number % len(sample)]
        data = {"text": f"{row['text']} (#{number})"}
        group = assist.group_of("tickets", data, 50)
        wrong = LABELS[(LABELS.index(row["label"]) + 1) % 3]
        suggestion = wrong if number % 4 == 0 else row["label"]
        label = suggestion if group == "assisted" else row["label"]
        annotations = [{"id": number * 2, "result": result(label), "lead_time": 4.0 if group == "assisted" else 11.0}]
        if number % 5 == 0:
            annotations.append({"id": number * 2 + 1, "result": result(row["label"]), "ground_truth": True})
        tasks.append({"id": number + 1, "data": data, "meta": {}, "annotations": annotations})
        logged.append({"id": number, "input_ref": assist.input_reference(data), "label": suggestion,
                       "made_at": "2026-12-03T10:00:00", "model_version": "1"})  # fmt: skip
    return tasks, logged


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=1000)
    args = parser.parse_args()
    tasks, logged = export(args.tasks)
    fit = fitter(starter_python(), starter_dir() / "train.py")
    figures: dict[str, float] = {}
    started = time.monotonic()
    found = experiment.items(tasks, logged, experiment="tickets", control_percent=50, text_key="text")
    summary = experiment.summary(found)
    figures["groups_s"] = round(time.monotonic() - started, 3)
    started = time.monotonic()
    effect = experiment.effect(found, fit, project_id=1, holdout_percent=20)
    figures["effect_with_fits_s"] = round(time.monotonic() - started, 2)
    test, _, excluded = experiment.held_out(found, 1, 20)
    sets = experiment.training_sets(found, excluded)
    started = time.monotonic()
    fit(sets, [text for text, _ in test])
    figures["baseline_fits_alone_s"] = round(time.monotonic() - started, 2)
    started = time.monotonic()
    page({"project": {"id": 1, "title": "benchmark"}, "control_percent": 50, "model_versions": ["tickets v1"],
          "generated_at": "now", "groups": summary, "effect": effect})  # fmt: skip
    figures["page_s"] = round(time.monotonic() - started, 3)
    figures["report_total_s"] = round(figures["groups_s"] + figures["effect_with_fits_s"] + figures["page_s"], 2)
    return report("labelling-report", {"tasks": args.tasks, "train_per_group": effect["train_per_group"],
                                       "held_out": effect["held_out"], "verdict": effect["verdict"],
                                       "figures": figures})  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(main())
