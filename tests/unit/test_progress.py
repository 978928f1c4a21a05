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


def test_the_first_failure_is_the_cause_and_what_follows_is_only_counted():
    """A host left out by a failure makes a later play fail on what it did not set (an undefined
    proxy_outputs): the summary names the first failure, the task and host it came from."""
    tracker = ProgressTracker(lambda layer: None, lambda name: None)
    ignored = {
        "event": "runner_on_failed",
        "event_data": {"task": "Probe", "host": "h1", "res": {"msg": "no"}, "ignore_errors": True},
    }
    failed = {
        "event": "runner_on_failed",
        "event_data": {"task": "Stop here", "host": "h1", "res": {"msg": "The upgrade of MLflow to 3.17.2 failed"}},
    }
    follows = {
        "event": "runner_on_failed",
        "event_data": {"task": "Write outputs.json", "host": "localhost",
                       "res": {"msg": "object of type 'HostVarsVars' has no attribute 'proxy_outputs'"}},
    }  # fmt: skip
    for event in (task("MLflow", "mlflow", "Check the inputs"), ignored):
        tracker.handle(event)
    assert tracker.first_failure == "" and tracker.later_failures == 0
    tracker.handle(failed)
    tracker.handle(task("Outputs", "", "Write outputs.json"))
    tracker.handle(follows)
    assert tracker.first_failure == "h1: Stop here: The upgrade of MLflow to 3.17.2 failed"
    assert tracker.later_failures == 1


def test_an_unreachable_host_is_a_failure_and_a_hidden_result_stays_hidden():
    unreachable = ProgressTracker(lambda layer: None, lambda name: None)
    unreachable.handle(task("Databases", "postgresql", "Install PostgreSQL"))
    unreachable.handle({"event": "runner_on_unreachable", "event_data": {
        "task": "Install PostgreSQL", "host": "mlenv-local",
        "res": {"msg": "SSH password was requested, but none specified"}}})  # fmt: skip
    said = "mlenv-local could not be reached: SSH password was requested, but none specified"
    assert unreachable.first_failure == said
    assert unreachable.layers[-1].failed == 1
    hidden = ProgressTracker(lambda layer: None, lambda name: None)
    hidden.handle(task("MLflow", "mlflow", "Set a password"))
    censored = {"task": "Set a password", "res": {"censored": "hidden"}}
    hidden.handle({"event": "runner_on_failed", "event_data": censored})
    assert hidden.first_failure == "Set a password"
