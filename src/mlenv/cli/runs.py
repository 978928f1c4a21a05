"""`mlenv runs`: the training runs the trigger service started, with their state and log."""

from __future__ import annotations

import json
from typing import Any

import click

from mlenv.app import Application

STATE_STYLE = {"queued": "yellow", "running": "cyan", "succeeded": "green", "failed": "red"}


def duration(run: dict[str, Any]) -> str:
    from datetime import datetime

    if not run.get("started_at"):
        return ""
    end = datetime.fromisoformat(run["finished_at"]) if run.get("finished_at") else None
    seconds = ((end or datetime.now(datetime.fromisoformat(run["started_at"]).tzinfo))
               - datetime.fromisoformat(run["started_at"])).total_seconds()  # fmt: skip
    return f"{seconds:.0f} s" + ("" if end else " so far")


def outcome(run: dict[str, Any]) -> str:
    result = run.get("result") or {}
    if result:
        return f"version {result.get('version')} → {result.get('decision')} ({result.get('score', 0):.3f})"
    return run.get("detail") or ""


@click.group(invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@click.pass_context
def runs(ctx: click.Context, as_json: bool) -> None:
    """The training runs (newest first): state, trigger, dataset version, duration, log."""
    if ctx.invoked_subcommand is not None:
        return
    from rich.table import Table

    app: Application = ctx.obj
    with app.platform() as platform:
        found = platform.runs().list()
    if as_json:
        app.console.print_json(json.dumps(found))
        return
    if not found:
        app.info("No runs yet: annotations in the projects of `loop.projects` start them.")
        return
    table = Table("run", "state", "trigger", "dataset version", "duration", "outcome", "log")
    table.columns[0].no_wrap = table.columns[3].no_wrap = True
    for run in found:
        style = STATE_STYLE.get(run["state"], "")
        table.add_row(run["id"], f"[{style}]{run['state']}[/{style}]", run["trigger"],
                      f"{run['dataset']}@{run['version']}", duration(run), outcome(run), run["log"])  # fmt: skip
    app.console.print(table)


@runs.command()
@click.argument("run_id")
@click.pass_obj
def show(app: Application, run_id: str) -> None:
    """One run, as JSON."""
    with app.platform() as platform:
        app.console.print_json(json.dumps(platform.runs().get(run_id)))


@runs.command()
@click.argument("run_id")
@click.pass_obj
def log(app: Application, run_id: str) -> None:
    """The last lines of a run's log."""
    with app.platform() as platform:
        text = platform.runs().log(run_id)
    app.console.print(text, markup=False, highlight=False, soft_wrap=True, end="")
