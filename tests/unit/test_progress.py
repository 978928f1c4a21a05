"""ansible-runner events become one finished line per play (a service layer), helper roles included."""

from __future__ import annotations

from mlenv.runners.ansible import LayerProgress, ProgressTracker


def task(play: str, role: str, name: str) -> dict:
    return {"event": "playbook_on_task_start", "event_data": {"play": play, "role": role, "task": name}}


def result(kind: str, *, changed: bool = False, ignore_errors: bool = False) -> dict:
    return {"event": kind, "event_data": {"res": {"changed": changed}, "ignore_errors": ignore_errors}}


def test_one_line_per_play_with_its_changes_and_failures():
    done: list[LayerProgress] = []
    tasks: list[str] = []
    tracker = ProgressTracker(done.append, tasks.append)
    events = [
        task("Object store", "object_store", "Check the inputs"),
        result("runner_on_ok"),
        task("Object store", "pip_venv", "Install the requirements"),
        result("runner_on_ok", changed=True),
        task("Object store", "object_store", "Create the buckets"),
        result("runner_on_ok", changed=True),
        task("TLS proxy", "proxy", "Write the nginx configuration"),
        result("runner_on_failed", ignore_errors=True),
        result("runner_on_failed"),
    ]
    for event in events:
        assert tracker.handle(event) is True
    tracker.finish()
    assert [(layer.name, layer.changed, layer.failed) for layer in done] == [
        ("Object store", 2, 0),
        ("TLS proxy", 0, 1),
    ]
    assert tasks[-1] == "TLS proxy: Write the nginx configuration"


def test_the_last_failure_is_kept_with_its_task_and_message():
    tracker = ProgressTracker(lambda layer: None, lambda name: None)
    ignored = {
        "event": "runner_on_failed",
        "event_data": {"task": "Probe", "res": {"msg": "no"}, "ignore_errors": True},
    }
    failed = {
        "event": "runner_on_failed",
        "event_data": {"task": "Stop here", "res": {"msg": "The upgrade of MLflow to 3.17.2 failed"}},
    }
    hidden = {"event": "runner_on_failed", "event_data": {"task": "Set a password", "res": {"censored": "hidden"}}}
    for event in (task("MLflow", "mlflow", "Check the inputs"), ignored):
        tracker.handle(event)
    assert tracker.last_failure == ""
    tracker.handle(failed)
    assert tracker.last_failure == "Stop here: The upgrade of MLflow to 3.17.2 failed"
    tracker.handle(hidden)
    assert tracker.last_failure == "Set a password"
