"""The loop's figures in Prometheus's text format, for the platform's Prometheus to scrape (with the
service's API token): runs per project and state, when a run last failed, the events waiting for a
dataset version, and the live accuracy of the model version answering the project's tasks beside the
threshold that retrains it. Read from the service's own tables: a scrape asks nothing of MLflow.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from mlenv_loop.service.store import STATES

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclass
class Family:
    """One metric: its name, help and type, and its samples (labels, value)."""

    name: str
    help: str
    kind: str = "gauge"
    samples: list[tuple[dict[str, str], float]] = field(default_factory=list)

    def add(self, value: float, **labels: str) -> None:
        self.samples.append((labels, value))

    def lines(self) -> Iterable[str]:
        yield f"# HELP {self.name} {self.help}"
        yield f"# TYPE {self.name} {self.kind}"
        for labels, value in self.samples:
            shown = ",".join(f'{key}="{escape(text)}"' for key, text in labels.items())
            yield f"{self.name}{{{shown}}} {value!r}" if shown else f"{self.name} {value!r}"


def escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def exposition(
    projects: list[dict[str, Any]],
    run_states: list[dict[str, Any]],
    waiting: dict[int, int],
    live: dict[int, list[dict[str, Any]]],
    retrain_below: dict[int, float | None],
) -> str:
    """The text a scrape gets. `projects` are the connected projects (project_id, title); the others
    are keyed by project_id: run counts and latest times per state (the store's run_states), events
    waiting, live accuracy rows (newest model version first) and each project's retrain threshold."""
    runs = Family("mlenv_loop_runs", "Training runs of the project, by state.")
    last_failed = Family(
        "mlenv_loop_last_failed_run_timestamp_seconds", "When the project's latest failed training run ended."
    )
    events = Family("mlenv_loop_waiting_events", "Annotation events not yet in a dataset version.")
    accuracy = Family(
        "mlenv_loop_live_accuracy",
        "Share of the latest labels (the project's window) that the newest model version predicted right.",
    )
    pairs = Family("mlenv_loop_live_pairs", "Labels paired with a prediction of the newest model version (window).")
    threshold = Family("mlenv_loop_retrain_below", "Live accuracy under which the project retrains.")
    for project in projects:
        project_id, title = project["project_id"], project["title"]
        mine = {row["state"]: row for row in run_states if row["project_id"] == project_id}
        for state in STATES:
            runs.add(float(mine[state]["count"]) if state in mine else 0.0, project=title, state=state)
        if "failed" in mine:
            last_failed.add(mine["failed"]["latest"].timestamp(), project=title)
        events.add(float(waiting.get(project_id, 0)), project=title)
        newest = next(iter(live.get(project_id, [])), None)
        if newest and newest["window_all"]:
            labels = {"project": title, "model": newest["model"], "version": str(newest["model_version"])}
            accuracy.add(newest["window_all_correct"] / newest["window_all"], **labels)
            pairs.add(float(newest["window_all"]), **labels)
        if retrain_below.get(project_id) is not None:
            threshold.add(float(retrain_below[project_id]), project=title)
    families = (runs, last_failed, events, accuracy, pairs, threshold)
    return "\n".join(line for family in families for line in family.lines()) + "\n"
