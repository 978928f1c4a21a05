"""`mlenv report labelling PROJECT`: the model-assisted labelling experiment of one Label Studio
project, as a table here, an HTML page with charts (saved) and an MLflow run (the page and the
figures as its artifacts)."""

from __future__ import annotations

import json
import subprocess
import tempfile
import time
from contextlib import nullcontext
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from mlenv.app import Application
from mlenv.errors import UserError

EXPERIMENT = "mlenv-labelling-reports"
FIT_TIMEOUT_S = 30 * 60


@click.group()
def report() -> None:
    """Reports on what the platform measured."""


def fitter(python: Path, train_py: Path) -> Any:
    """The training project's own model, fitted per training set by its train.py --compare."""

    def fit(sets: dict[str, list[tuple[str, str]]], texts: list[str]) -> dict[str, list[str]]:
        with tempfile.TemporaryDirectory(prefix="mlenv-report-") as folder:
            path = Path(folder) / "sets.json"
            path.write_text(json.dumps({"train": sets, "test": texts}))
            try:
                done = subprocess.run([str(python), str(train_py), "--compare", str(path)], capture_output=True,
                                      text=True, timeout=FIT_TIMEOUT_S, check=False)  # fmt: skip
            except subprocess.TimeoutExpired:
                raise UserError(f"{train_py} --compare took over {FIT_TIMEOUT_S} s") from None
        if done.returncode != 0:
            raise UserError(f"{train_py} --compare failed: {done.stderr.strip()[-800:]}")
        return json.loads(done.stdout.strip().splitlines()[-1])["predictions"]

    return fit


def build(app: Application, project_id: int, python: Path | None, *, seed: int, quiet: bool) -> dict[str, Any]:
    from mlenv import training_env
    from mlenv_loop import assist, experiment

    started, label = time.monotonic(), assist.model_version_label
    with app.platform() as platform:
        label_studio = platform.label_studio()
        project = label_studio.project(project_id)
        loop_project = next((found for found in app.config.loop.projects if found.title == project.title), None)
        if loop_project is None:
            raise UserError(
                f"Label Studio project {project_id} ({project.title!r}) is not in loop.projects of mlenv.yaml: "
                "the experiment runs on the projects the loop assists"
            )
        try:
            target = assist.choice_target(project.label_config)
        except assist.UnusableConfig as err:
            raise UserError(f"project {project_id}: {err}") from None
        exported = label_studio.export(project_id)
        logged = platform.runs().predictions(project_id)
    found = experiment.items(exported, logged, experiment=loop_project.dataset,
                             control_percent=loop_project.control_percent, text_key=target.data_key)  # fmt: skip
    # With --json, stdout holds the JSON alone.
    with nullcontext() if quiet else app.status("training the starter model on each group's labels …"):
        interpreter = python or training_env.starter_python()
        effect = experiment.effect(found, fitter(interpreter, training_env.starter_dir() / "train.py"),
                                   project_id=project_id, holdout_percent=app.config.loop.holdout_percent,
                                   seed=seed)  # fmt: skip
    return {
        "project": {
            "id": project_id,
            "title": project.title,
            "dataset": loop_project.dataset,
            "model": loop_project.model,
        },
        "control_percent": loop_project.control_percent,
        "model_versions": sorted({label(loop_project.model, str(row["model_version"])) for row in logged}),
        "groups": experiment.summary(found),
        "effect": effect,
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "seconds": round(time.monotonic() - started, 1),
    }


def log_to_mlflow(app: Application, found: dict[str, Any], page: str) -> str:
    """A run of the experiment "mlenv-labelling-reports" with the figures and the page; its id."""
    metrics = {f"{group}.{key}": value for group, summary in found["groups"].items()
               for key, value in summary.items() if isinstance(value, int | float)}  # fmt: skip
    for name in ("accuracy", "f1_macro"):
        if name in found["effect"]:
            for key in ("assisted", "control", "difference"):
                metrics[f"effect.{name}.{key}"] = found["effect"][name][key]
            metrics[f"effect.{name}.ci95_low"], metrics[f"effect.{name}.ci95_high"] = found["effect"][name]["ci95"]
    project = found["project"]
    with app.platform() as platform:
        registry = platform.registry()
        run = registry.start_run(registry.experiment_id(EXPERIMENT), f"labelling {project['title']}",
                                 {"mlenv.label_studio_project": str(project["id"]), "mlenv.dataset": project["dataset"],
                                  "mlenv.verdict": found["effect"]["verdict"]})  # fmt: skip
        params = {
            "control_percent": str(found["control_percent"]),
            "train_per_group": str(found["effect"]["train_per_group"]),
        }
        registry.log_batch(run["run_id"], metrics, params)
        registry.upload_artifact(run, "labelling-report.html", page.encode(), "text/html")
        figures = json.dumps(found, indent=2).encode()
        registry.upload_artifact(run, "labelling-report.json", figures, "application/json")
        registry.end_run(run["run_id"])
    return str(run["run_id"])


def show(app: Application, found: dict[str, Any]) -> None:
    from rich.table import Table

    from mlenv.report_page import ROWS

    table = Table(title=f"Labelling experiment: {found['project']['title']} (control {found['control_percent']} %)")
    table.add_column("")
    table.add_column("assisted", justify="right")
    table.add_column("control", justify="right")

    for name, key in ROWS:
        cells = [found["groups"][group][key] for group in ("assisted", "control")]
        table.add_row(name, *("—" if cell is None else f"{cell:.3f}" if isinstance(cell, float) else str(cell)
                              for cell in cells))  # fmt: skip
    effect = found["effect"]
    if "accuracy" in effect:
        for metric in ("accuracy", "f1_macro"):
            shown = effect[metric]
            low, high = shown["ci95"]
            table.add_row(f"Held-out {metric}, model trained on the group's labels",
                          f"{shown['assisted']:.3f}", f"{shown['control']:.3f}")  # fmt: skip
            table.add_row("  difference (95 % interval)", f"{shown['difference']:+.3f} ({low:+.3f} to {high:+.3f})", "")
    app.console.print(table)
    app.info(f"effect on the model: {effect['verdict']} ({effect['train_per_group']} labels per group, "
             f"{effect['held_out']} held-out items, reference: {effect['reference']})")  # fmt: skip


@report.command()
@click.argument("project", type=int)
@click.option(
    "--output",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for the page and its JSON [default: <state>/reports/labelling-<PROJECT>-<time>].",
)
@click.option("--python", type=click.Path(dir_okay=False, exists=True, path_type=Path), envvar="MLENV_TRAIN_PYTHON",
              help="Python with the training project's requirements [default: a cached venv of its lock].")  # fmt: skip
@click.option("--no-mlflow", is_flag=True, help="Do not log the report to MLflow.")
@click.option("--seed", type=int, default=0, show_default=True, help="Of the bootstrap's resampling.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_obj
def labelling(app: Application, project: int, output: Path | None, python: Path | None, no_mlflow: bool,
              seed: int, as_json: bool) -> None:  # fmt: skip
    """Compare the assisted and the control group of Label Studio project PROJECT: their labels, and
    the model each group's labels train."""
    from mlenv.report_page import page

    found = build(app, project, python, seed=seed, quiet=as_json)
    html = page(found)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    folder = output or app.state / "reports" / f"labelling-{project}-{stamp}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "labelling-report.html").write_text(html)
    found["page"] = str(folder / "labelling-report.html")
    if not no_mlflow:
        found["mlflow_run_id"] = log_to_mlflow(app, found, html)
    (folder / "labelling-report.json").write_text(json.dumps(found, indent=2))
    if as_json:
        app.console.print_json(json.dumps(found))
        return
    show(app, found)
    app.info(f"page: {found['page']}" + (f"; MLflow run {found['mlflow_run_id']}" if not no_mlflow else ""))
