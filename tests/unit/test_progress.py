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
