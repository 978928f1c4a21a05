"""Dataset versions: a Label Studio project's annotations, frozen in the object store.

A version is content-addressed: its id is the start of the sha256 of its data file, and the data
file holds only what the annotations say (task data, annotation ids, results, who made them,
the split), never when they were exported, so the same annotations always give the same version
and a second snapshot of an unchanged project writes nothing. Each task's split (train or test)
follows from a hash of the project and task ids, so a task held out once stays held out in
every later version, and models trained on different versions are compared on fair ground.

Layout in the datasets bucket (a version is complete once its manifest exists; it is written last):

    <dataset>/versions/<version>/tasks.jsonl     one task a line, sorted by task id
    <dataset>/versions/<version>/manifest.json   source, counts, labels, annotation ids, file hashes
    <dataset>/tags/<tag>.json                    {"version": …}: tags move, versions never change
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from mlenv_loop.errors import LoopError
from mlenv_loop.labelstudio import Project

SCHEMA = 1
DATA_FILE = "tasks.jsonl"
MANIFEST_FILE = "manifest.json"
VERSION_LENGTH = 16
DEFAULT_HOLDOUT_PERCENT = 20

NAME = re.compile(r"^[a-z][a-z0-9-]{0,62}$")
TAG = re.compile(r"^[a-z][a-z0-9._-]{0,62}$")
VERSION_PREFIX = re.compile(r"^[0-9a-f]{6,16}$")

Split = Literal["train", "test"]


class DatasetError(LoopError):
    """A dataset, version or tag that does not exist or cannot be used; the message says what to do."""


def check_name(dataset: str) -> str:
    if not NAME.match(dataset):
        raise DatasetError(
            f"dataset name {dataset!r}: use lower-case letters, digits and dashes, starting with a letter"
        )
    return dataset


def check_tag(tag: str) -> str:
    if not TAG.match(tag) or VERSION_PREFIX.match(tag):
        raise DatasetError(
            f"tag {tag!r}: use lower-case letters, digits, dots, dashes and underscores, starting with a "
            "letter, and not something that reads as a version id"
        )
    return tag


def default_name(project_id: int) -> str:
    return f"project-{project_id}"


def split_of(project_id: int, task_id: int, holdout_percent: int) -> Split:
    digest = hashlib.sha256(f"{project_id}:{task_id}".encode()).digest()
    return "test" if int.from_bytes(digest[:4], "big") % 100 < holdout_percent else "train"


def labels_of(result: list[dict[str, Any]]) -> list[str]:
    """The class names an annotation's result gives (choices, labels, rectanglelabels, …)."""
    found: list[str] = []
    for region in result:
        for key, value in (region.get("value") or {}).items():
            if (key == "choices" or key.endswith("labels")) and isinstance(value, list):
                found.extend(str(item) for item in value)
    return found


def records(project_id: int, tasks: list[dict[str, Any]], holdout_percent: int) -> list[dict[str, Any]]:
    """One record a task that has an annotation that was not cancelled, in task id order."""
    kept = []
    for task in sorted(tasks, key=lambda found: int(found["id"])):
        annotations = sorted(
            (
                {"id": int(one["id"]), "completed_by": one.get("completed_by"), "result": one.get("result") or []}
                for one in task.get("annotations") or []
                if not one.get("was_cancelled")
            ),
            key=lambda one: one["id"],
        )
        if annotations:
            kept.append(
                {
                    "task": int(task["id"]),
                    "split": split_of(project_id, int(task["id"]), holdout_percent),
                    "data": task.get("data") or {},
                    "annotations": annotations,
                }
            )
    return kept


def encode(lines: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(line, sort_keys=True, separators=(",", ":")) + "\n" for line in lines).encode()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Snapshot:
    dataset: str
    version: str
    files: dict[str, bytes]
    manifest: dict[str, Any]


def snapshot(
    project: Project,
    tasks: list[dict[str, Any]],
    *,
    dataset: str,
    source_url: str,
    holdout_percent: int = DEFAULT_HOLDOUT_PERCENT,
    now: datetime | None = None,
) -> Snapshot:
    check_name(dataset)
    if not 0 < holdout_percent < 100:
        raise DatasetError(f"holdout percent {holdout_percent}: give a whole number from 1 to 99")
    kept = records(project.id, tasks, holdout_percent)
    if not kept:
        raise DatasetError(f"Label Studio project {project.id} ({project.title}) has no annotations to snapshot yet")
    data = encode(kept)
    version = sha256(data)[:VERSION_LENGTH]
    latest_labels = Counter(label for record in kept for label in labels_of(record["annotations"][-1]["result"]))
    splits = Counter(record["split"] for record in kept)
    manifest = {
        "schema": SCHEMA,
        "dataset": dataset,
        "version": version,
        "source": {"label_studio": source_url, "project_id": project.id, "project_title": project.title},
        "exported_at": (now or datetime.now(UTC)).isoformat(timespec="seconds"),
        "holdout_percent": holdout_percent,
        "counts": {
            "tasks": len(kept),
            "annotations": sum(len(record["annotations"]) for record in kept),
            "train": splits["train"],
            "test": splits["test"],
        },
        # Of each task's latest annotation: what a model trained on this version learns.
        "labels": dict(sorted(latest_labels.items())),
        "annotation_ids": [one["id"] for record in kept for one in record["annotations"]],
        "files": [{"name": DATA_FILE, "sha256": sha256(data), "bytes": len(data)}],
    }
    return Snapshot(dataset=dataset, version=version, files={DATA_FILE: data}, manifest=manifest)


def _missing(error: Exception) -> bool:
    code = str(getattr(error, "response", {}).get("Error", {}).get("Code", ""))
    return code in {"404", "NoSuchKey", "NotFound"}


class DatasetStore:
    """Dataset versions and tags in one bucket, through an S3 client (boto3's)."""

    def __init__(self, s3: Any, bucket: str) -> None:
        self._s3 = s3
        self.bucket = bucket

    def _versions_prefix(self, dataset: str) -> str:
        return f"{check_name(dataset)}/versions/"

    def _key(self, dataset: str, version: str, name: str) -> str:
        return f"{self._versions_prefix(dataset)}{version}/{name}"

    def _read_json(self, key: str) -> dict[str, Any] | None:
        try:
            body = self._s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except Exception as err:
            if _missing(err):
                return None
            raise
        return json.loads(body)

    def _names(self, prefix: str) -> list[str]:
        names: list[str] = []
        for page in self._s3.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=prefix, Delimiter="/"
        ):
            names += [found["Prefix"][len(prefix) :].rstrip("/") for found in page.get("CommonPrefixes", [])]
            names += [found["Key"][len(prefix) :] for found in page.get("Contents", [])]
        return names

    def put(self, snap: Snapshot) -> bool:
        """Stores a new version (data files first, the manifest last); False when it already exists."""
        if self.manifest_of(snap.dataset, snap.version) is not None:
            return False
        for name, body in snap.files.items():
            self._s3.put_object(Bucket=self.bucket, Key=self._key(snap.dataset, snap.version, name), Body=body)
        manifest = json.dumps(snap.manifest, indent=2, sort_keys=True).encode()
        self._s3.put_object(
            Bucket=self.bucket,
            Key=self._key(snap.dataset, snap.version, MANIFEST_FILE),
            Body=manifest,
            ContentType="application/json",
        )
        return True

    def datasets(self) -> list[str]:
        return sorted(name for name in self._names("") if NAME.match(name))

    def manifest_of(self, dataset: str, version: str) -> dict[str, Any] | None:
        return self._read_json(self._key(dataset, version, MANIFEST_FILE))

    def versions(self, dataset: str) -> list[dict[str, Any]]:
        """The complete versions' manifests, oldest first."""
        found = [self.manifest_of(dataset, version) for version in self._names(self._versions_prefix(dataset))]
        return sorted((one for one in found if one is not None), key=lambda one: (one["exported_at"], one["version"]))

    def tags(self, dataset: str) -> dict[str, str]:
        prefix = f"{check_name(dataset)}/tags/"
        found = {}
        for name in self._names(prefix):
            if name.endswith(".json"):
                pointer = self._read_json(prefix + name)
                if pointer is not None:
                    found[name.removesuffix(".json")] = str(pointer["version"])
        return dict(sorted(found.items()))

    def tagged(self, dataset: str, tag: str) -> str | None:
        """The version a tag points at; None when there is no such tag."""
        pointer = self._read_json(f"{check_name(dataset)}/tags/{check_tag(tag)}.json")
        return str(pointer["version"]) if pointer is not None else None

    def resolve(self, dataset: str, ref: str | None = None) -> dict[str, Any]:
        """The manifest that `ref` names: a tag, a version id or its unique start; none: the newest version."""
        versions = self.versions(dataset)
        if not versions:
            known = ", ".join(self.datasets()) or "none yet"
            raise DatasetError(f"dataset {dataset!r} has no versions (datasets: {known})")
        if ref is None:
            return versions[-1]
        tags = self.tags(dataset)
        if ref in tags:
            ref = tags[ref]
        elif not VERSION_PREFIX.match(ref):
            raise DatasetError(f"{dataset} has no tag {ref!r} (tags: {', '.join(tags) or 'none'})")
        matches = [one for one in versions if one["version"].startswith(ref)]
        if len(matches) != 1:
            what = "no version" if not matches else f"{len(matches)} versions"
            raise DatasetError(f"{dataset} has {what} starting with {ref!r}: `mlenv dataset list {dataset}` lists them")
        return matches[0]

    def tag(self, dataset: str, ref: str, tag: str) -> str:
        check_tag(tag)
        version = self.resolve(dataset, ref)["version"]
        pointer = {"version": version, "tagged_at": datetime.now(UTC).isoformat(timespec="seconds")}
        self._s3.put_object(Bucket=self.bucket, Key=f"{dataset}/tags/{tag}.json", Body=json.dumps(pointer).encode())
        return version

    def pull(self, dataset: str, ref: str | None, destination: Path) -> Path:
        """Downloads a version into destination/<dataset>@<version>/, each file checked against the manifest."""
        manifest = self.resolve(dataset, ref)
        target = destination / f"{dataset}@{manifest['version']}"
        if target.exists():
            raise DatasetError(f"{target} exists already: remove it or pull somewhere else")
        destination.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".pull-", dir=destination))
        try:
            for entry in manifest["files"]:
                key = self._key(dataset, manifest["version"], entry["name"])
                body = self._s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
                if sha256(body) != entry["sha256"]:
                    raise DatasetError(f"s3://{self.bucket}/{key} does not match its manifest's sha256: not pulled")
                (staging / entry["name"]).write_bytes(body)
            (staging / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2, sort_keys=True))
            staging.rename(target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return target


def uri(bucket: str, dataset: str, version: str) -> str:
    return f"s3://{bucket}/{dataset}/versions/{version}/"
