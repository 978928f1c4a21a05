"""`mlenv model` and `mlenv lineage`: the registered models the loop trains, and where they came from."""

from __future__ import annotations

import json
import re
from typing import Any

import click

from mlenv.app import Application

GATE = "mlenv.gate."
MODEL_REF = re.compile(r"^(?P<name>[^@/]+)(?:@(?P<alias>[A-Za-z][\w-]*)|/(?P<version>\d+))?$")


@click.group()
def model() -> None:
    """The registered models: move the production alias."""


@model.command()
@click.argument("name")
@click.pass_obj
def rollback(app: Application, name: str) -> None:
    """Move `production` back to the version it replaced (the model server follows)."""
    from mlenv_loop.registry import rollback as roll_back

    with app.platform() as platform:
        current, target = roll_back(platform.registry(), name)
    app.success(f"{name}: production moved from version {current.version} back to version {target.version}")


def parse_ref(ref: str) -> tuple[str, str | None, str | None]:
    from mlenv.errors import UserError

    found = MODEL_REF.match(ref)
    if found is None:
        raise UserError(f"{ref!r}: give MODEL, MODEL@ALIAS or MODEL/VERSION (e.g. tickets@production)")
    return found["name"], found["alias"], found["version"]


def chain(platform: Any, name: str, alias: str | None, version: str | None) -> dict[str, Any]:
    """Served model ← version ← run ← dataset version ← labels ← code, as one dictionary."""
    from mlenv_loop.datasets import DatasetError
    from mlenv_loop.http import ServiceError

    registry = platform.registry()
    found = registry.version(name, version) if version else registry.by_alias(name, alias or "production")
    tags = found.tags
    run = registry.run(found.run_id) if found.run_id else {"info": {}, "data": {}}
    metrics = {metric["key"]: metric["value"] for metric in run["data"].get("metrics", [])}
    links: dict[str, Any] = {
        "model": {"name": name, "version": found.version, "aliases": list(found.aliases), "source": found.source},
        "gate": {key.removeprefix(GATE): value for key, value in tags.items() if key.startswith(GATE)},
        "run": {"id": found.run_id, "experiment": run["info"].get("experiment_id"), "metrics": metrics,
                "job": tags.get("mlenv.job"), "trigger": tags.get("mlenv.trigger")},
        "dataset": {"name": tags.get("mlenv.dataset"), "version": tags.get("mlenv.dataset_version"),
                    "uri": tags.get("mlenv.dataset_uri")},
        "labels": {"label_studio_project": tags.get("mlenv.label_studio_project"),
                   "annotations": tags.get("mlenv.annotation_count")},
        "code": {"version": tags.get("mlenv.code_version")},
    }  # fmt: skip
    if tags.get("mlenv.previous_production"):
        links["gate"]["replaced_version"] = tags["mlenv.previous_production"]
    links["served"] = served_link(platform, name, found.version)
    dataset, dataset_version = tags.get("mlenv.dataset"), tags.get("mlenv.dataset_version")
    if dataset and dataset_version and dataset != "sample":
        try:
            manifest = platform.datasets().resolve(dataset, dataset_version)
        except DatasetError as err:
            links["dataset"]["missing"] = str(err)
        else:
            links["dataset"].update(counts=manifest["counts"], exported_at=manifest["exported_at"])
            links["labels"].update(manifest["source"], labels=manifest["labels"])
            try:
                project = platform.label_studio().project(int(manifest["source"]["project_id"]))
                links["labels"]["project_title_now"] = project.title
            except ServiceError as err:
                links["labels"]["missing"] = str(err)
    return links


def served_link(platform: Any, name: str, version: str) -> dict[str, Any]:
    """What the model server serves under this name, and whether it is this version."""
    from mlenv.errors import UserError
    from mlenv_loop.http import ServiceError

    try:
        serving = platform.model_server()
        served = serving.served_version(name)
    except (ServiceError, UserError) as err:
        return {"url": None, "version": None, "this_version": False, "missing": str(err)}
    return {"url": f"{serving.url}/v2/models/{name}/infer", "version": served, "this_version": served == version}


@model.command()
@click.argument("name")
@click.argument("texts", nargs=-1, required=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@click.pass_obj
def predict(app: Application, name: str, texts: tuple[str, ...], as_json: bool) -> None:
    """Ask the model server for NAME's predictions of TEXTS (through the proxy, V2 protocol)."""
    with app.platform() as platform:
        serving = platform.model_server()
        labels = serving.predict(name, list(texts))
        version = serving.served_version(name)
    if as_json:
        app.console.print_json(json.dumps({"model": name, "version": version, "predictions": labels}))
        return
    for text, label in zip(texts, labels, strict=True):
        app.console.print(f"{label}\t{text}", markup=False, highlight=False, soft_wrap=True)
    app.info(f"{name} version {version}, served by {serving.url}")


@click.command()
@click.argument("ref", metavar="MODEL[@ALIAS|/VERSION]")
@click.option("--json", "as_json", is_flag=True, help="Print the chain as JSON.")
@click.pass_obj
def lineage(app: Application, ref: str, as_json: bool) -> None:
    """Where a model version came from: version ← run ← dataset version ← labels ← code [default: @production]."""
    from rich.tree import Tree

    name, alias, version = parse_ref(ref)
    with app.platform() as platform:
        links = chain(platform, name, alias, version)
    if as_json:
        app.console.print_json(json.dumps(links))
        return
    model_link, run, data, labels = links["model"], links["run"], links["dataset"], links["labels"]
    aliases = ", ".join(model_link["aliases"]) or "no alias"
    tree = Tree(f"[bold]{name}[/bold] version {model_link['version']} ({aliases})")
    served = links["served"]
    if served["this_version"]:
        tree.add(f"served: {served['url']}")
    else:
        why = served.get("missing") or f"the server has version {served['version']}"
        tree.add(f"served: not this version ({why})")
    gate = links["gate"]
    if gate:
        against = "no production version before it"
        if gate.get("production_version", "none") != "none":
            against = f"production version {gate['production_version']} scored {gate.get('production_score')}"
        replaced = f", replaced version {gate['replaced_version']}" if "replaced_version" in gate else ""
        tree.add(f"gate: {gate.get('decision')} — {gate.get('metric')} {gate.get('score')}, {against}{replaced}")
    shown = ", ".join(f"{key} {value:.3f}" for key, value in sorted(run["metrics"].items()))
    run_node = tree.add(f"run {run['id']}: {shown or 'no metrics'}; job {run['job']}, trigger {run['trigger']!r}")
    counts = data.get("counts")
    described = data.get("missing", "")
    if counts:
        described = (f"{counts['tasks']} tasks, {counts['annotations']} annotations, {counts['train']} train / "
                     f"{counts['test']} test, exported {data['exported_at']}")  # fmt: skip
    data_node = run_node.add(f"dataset {data['name']}@{data['version']} ({data['uri']}): {described}")
    where = f"{labels.get('label_studio', 'Label Studio')} project {labels['label_studio_project']}"
    title = labels.get("project_title_now") or labels.get("project_title") or ""
    label_counts = ", ".join(f"{key} {value}" for key, value in (labels.get("labels") or {}).items())
    data_node.add(f"labels: {where} {title!r}: {labels['annotations']} annotations ({label_counts})")
    tree.add(f"code: {links['code']['version']}")
    app.console.print(tree)
