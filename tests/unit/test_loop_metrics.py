"""The trigger service's /metrics text: what Prometheus reads of the loop, parsed the way it parses it."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from mlenv_loop.service.metrics import exposition

# One sample line of the text format: name{labels} value.
SAMPLE = re.compile(r'^(?P<name>[a-z_]+)(?:\{(?P<labels>(?:[a-z_]+="(?:[^"\\]|\\.)*",?)*)\})? (?P<value>\S+)$')
FAILED_AT = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    found = {}
    for line in text.splitlines():
        if line.startswith("#"):
            assert re.match(r"^# (HELP|TYPE) [a-z_]+ \S", line), line
            continue
        match = SAMPLE.match(line)
        assert match, f"not a sample line: {line!r}"
        labels = frozenset(re.findall(r'([a-z_]+)="((?:[^"\\]|\\.)*)"', match["labels"] or ""))
        found[(match["name"], labels)] = float(match["value"])
    return found


def figures() -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return samples(
        exposition(
            projects=[{"project_id": 3, "title": 'Tickets "EU"'}, {"project_id": 4, "title": "new"}],
            run_states=[
                {"project_id": 3, "state": "succeeded", "count": 2, "latest": FAILED_AT},
                {"project_id": 3, "state": "failed", "count": 1, "latest": FAILED_AT},
                {"project_id": 9, "state": "failed", "count": 5, "latest": FAILED_AT},
            ],
            waiting={3: 4},
            live={3: [{"model": "tickets", "model_version": 2, "window_all": 8, "window_all_correct": 6},
                      {"model": "tickets", "model_version": 1, "window_all": 50, "window_all_correct": 49}]},
            retrain_below={3: 0.8, 4: None},
        )
    )  # fmt: skip


def test_runs_are_counted_per_project_and_every_state_even_with_none() -> None:
    found = figures()
    eu = 'Tickets \\"EU\\"'
    assert found[("mlenv_loop_runs", frozenset({("project", eu), ("state", "succeeded")}))] == 2
    assert found[("mlenv_loop_runs", frozenset({("project", eu), ("state", "failed")}))] == 1
    assert found[("mlenv_loop_runs", frozenset({("project", "new"), ("state", "queued")}))] == 0
    # A project the service does not train from is not shown.
    assert not any(("project", "9") in labels for _, labels in found)


def test_the_last_failure_and_the_newest_versions_live_accuracy_are_given() -> None:
    found = figures()
    eu = ("project", 'Tickets \\"EU\\"')
    assert found[("mlenv_loop_last_failed_run_timestamp_seconds", frozenset({eu}))] == FAILED_AT.timestamp()
    newest = frozenset({eu, ("model", "tickets"), ("version", "2")})
    assert found[("mlenv_loop_live_accuracy", newest)] == 0.75
    assert found[("mlenv_loop_live_pairs", newest)] == 8
    assert found[("mlenv_loop_retrain_below", frozenset({eu}))] == 0.8
    assert found[("mlenv_loop_waiting_events", frozenset({("project", "new")}))] == 0
    # No failure, no accuracy and no threshold yet: no sample rather than a made-up one.
    assert ("mlenv_loop_last_failed_run_timestamp_seconds", frozenset({("project", "new")})) not in found
    assert not any(name == "mlenv_loop_live_accuracy" and ("project", "new") in labels for name, labels in found)
