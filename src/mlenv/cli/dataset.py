"""`mlenv dataset`: versions of the labels, kept in the datasets bucket outside git."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from mlenv.app import Application

if TYPE_CHECKING:
    from mlenv_loop.datasets import DatasetStore


def split_ref(text: str) -> tuple[str, str | None]:
    dataset, _, ref = text.partition("@")
    return dataset, ref or None


def print_json(app: Application, value: object) -> None:
    app.console.print_json(json.dumps(value))


@click.group()
def dataset() -> None:
    """Dataset versions: snapshots of a Label Studio project's annotations, content-addressed."""


@dataset.command()
@click.argument("project", type=int)
@click.option("--dataset", "name", help="The dataset's name [default: project-<PROJECT>].")
@click.option("--holdout", type=click.IntRange(1, 99), default=20, show_default=True, help="Percent held out.")
@click.option("--tag", "tags", multiple=True, help="Point this tag at the version (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print the manifest as JSON.")
@click.pass_obj
def snapshot(
    app: Application, project: int, name: str | None, holdout: int, tags: tuple[str, ...], as_json: bool
) -> None:
    """Freeze the annotations of Label Studio project PROJECT as a dataset version."""
    from mlenv_loop import datasets

    with app.platform() as platform:
        name = datasets.check_name(name or datasets.default_name(project))
        for tag in tags:
            datasets.check_tag(tag)
        store, client = platform.datasets(), platform.label_studio()
        found = client.project(project)
        snap = datasets.snapshot(
            found, client.export(project), dataset=name, source_url=client.url, holdout_percent=holdout
        )
        created = store.put(snap)
        for tag in tags:
            store.tag(name, snap.version, tag)
        manifest = store.manifest_of(name, snap.version) or snap.manifest
    if as_json:
        print_json(app, manifest)
        return
    counts = manifest["counts"]
    what = "new version" if created else "unchanged: the same annotations are already version"
    app.success(
        f"{name}@{snap.version}: {what} {snap.version} ({counts['tasks']} tasks, "
        f"{counts['annotations']} annotations; {counts['train']} train / {counts['test']} test)"
    )


def versions_table(store: DatasetStore, name: str) -> tuple[list[dict[str, Any]], dict[str, list[str]]]:
    tags_by_version: dict[str, list[str]] = {}
    for tag, version in store.tags(name).items():
        tags_by_version.setdefault(version, []).append(tag)
    return store.versions(name), tags_by_version


@dataset.command(name="list")
@click.argument("name", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@click.pass_obj
def list_(app: Application, name: str | None, as_json: bool) -> None:
    """The datasets, or one dataset's versions (oldest first) with their tags."""
    from rich.table import Table

    with app.platform() as platform:
        store = platform.datasets()
        if name is None:
            rows = [
                {"dataset": one, "versions": store.versions(one), "tags": store.tags(one)} for one in store.datasets()
            ]
            if as_json:
                summary = [
                    {"dataset": row["dataset"], "versions": len(row["versions"]), "tags": row["tags"],
                     "latest": row["versions"][-1]["version"] if row["versions"] else None}
                    for row in rows
                ]  # fmt: skip
                print_json(app, summary)
                return
            table = Table(title="datasets")
            for column in ("dataset", "versions", "latest", "tags"):
                table.add_column(column)
            for row in rows:
                latest = row["versions"][-1]["version"] if row["versions"] else "-"
                tags = ", ".join(f"{tag}→{version[:8]}" for tag, version in row["tags"].items())
                table.add_row(row["dataset"], str(len(row["versions"])), latest, tags)
            app.console.print(table)
            return
        versions, tags = versions_table(store, name)
        if not versions:
            store.resolve(name)  # names the datasets there are
    if as_json:
        print_json(app, [{**manifest_summary(one), "tags": tags.get(one["version"], [])} for one in versions])
        return
    table = Table(title=f"dataset {name}")
    for column in ("version", "exported", "tasks", "annotations", "train", "test", "tags"):
        table.add_column(column, justify="right" if column in {"tasks", "annotations", "train", "test"} else "left")
    for one in versions:
        counts = one["counts"]
        table.add_row(one["version"], one["exported_at"], *(str(counts[key]) for key in ("tasks", "annotations",
                      "train", "test")), ", ".join(tags.get(one["version"], [])))  # fmt: skip
    app.console.print(table)


def manifest_summary(manifest: dict[str, Any]) -> dict[str, Any]:
    return {key: manifest[key] for key in ("version", "exported_at", "counts", "labels", "source")}


@dataset.command()
@click.argument("ref", metavar="DATASET[@VERSION|@TAG]")
@click.option("--json", "as_json", is_flag=True, help="Print the whole manifest as JSON.")
@click.pass_obj
def show(app: Application, ref: str, as_json: bool) -> None:
    """One version's manifest: where it came from, its counts, labels and files [default: the newest]."""
    from rich.table import Table

    name, version = split_ref(ref)
    with app.platform() as platform:
        store = platform.datasets()
        manifest = store.resolve(name, version)
        tags = [tag for tag, pointed in store.tags(name).items() if pointed == manifest["version"]]
    if as_json:
        print_json(app, {**manifest, "tags": tags})
        return
    source = manifest["source"]
    table = Table(title=f"{name}@{manifest['version']}", show_header=False)
    table.add_column("field")
    table.add_column("value")
    table.add_row("source", f"{source['label_studio']} project {source['project_id']} ({source['project_title']})")
    table.add_row("exported", manifest["exported_at"])
    counts = manifest["counts"]
    table.add_row("counts", ", ".join(f"{key} {counts[key]}" for key in ("tasks", "annotations", "train", "test")))
    table.add_row("labels", ", ".join(f"{key} {value}" for key, value in manifest["labels"].items()) or "-")
    table.add_row("held out", f"{manifest['holdout_percent']} %")
    table.add_row("tags", ", ".join(tags) or "-")
    for entry in manifest["files"]:
        table.add_row(entry["name"], f"{entry['bytes']} bytes, sha256 {entry['sha256']}")
    app.console.print(table)


@dataset.command()
@click.argument("ref", metavar="DATASET@VERSION|DATASET@TAG")
@click.argument("tag")
@click.pass_obj
def tag(app: Application, ref: str, tag: str) -> None:
    """Point TAG (e.g. stable) at a version; a tag that exists moves."""
    name, version = split_ref(ref)
    if version is None:
        from mlenv.errors import UserError

        raise UserError(f"say which version to tag: {name}@<version> (`mlenv dataset list {name}` lists them)")
    with app.platform() as platform:
        store = platform.datasets()
        pointed = store.tag(name, version, tag)
    app.success(f"{name}:{tag} → {pointed}")


@dataset.command()
@click.argument("ref", metavar="DATASET[@VERSION|@TAG]")
@click.option("--to", "destination", type=click.Path(file_okay=False, path_type=Path), default=Path(),
              show_default=True, help="Folder to pull into (as <dataset>@<version>/).")  # fmt: skip
@click.pass_obj
def pull(app: Application, ref: str, destination: Path) -> None:
    """Download a version, each file checked against its manifest's sha256 [default: the newest]."""
    name, version = split_ref(ref)
    with app.platform() as platform:
        store = platform.datasets()
        target = store.pull(name, version, destination)
    app.success(f"pulled into {target}")
