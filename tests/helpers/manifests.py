"""Kubernetes manifests checked offline, with unknown fields rejected: core kinds against the Kubernetes
schemas (kubernetes-validate, strict), Argo and KServe kinds against their upstream CRD schemas at the
pinned tags.

The CRD files are not part of the project: they are found through MLENV_CRD_DIR, the workplace's
../shared/crds, or the cache that `scripts/fetch-crds` fills from upstream (each checked against the
sha256 pinned in CRD_PINS).
"""

from __future__ import annotations

import copy
import hashlib
import os
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[3]
KUBERNETES_VERSIONS = ("1.31", "1.33", "1.35")
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mlenv" / "crds"

# <folder>/<file>: (upstream repository@tag path, sha256) — the exact upstream schemas the tests use.
CRD_PINS: dict[str, tuple[str, str]] = {
    "argo-workflows-v4.1.2/argoproj.io_workflows.yaml": (
        "argoproj/argo-workflows/v4.1.2/manifests/base/crds/full/argoproj.io_workflows.yaml",
        "35ffc0d16c9c71db69ae113e562d90057eac75a60e7371aa3012a3171ccd8c39",
    ),
    "argo-workflows-v4.1.2/argoproj.io_workflowtemplates.yaml": (
        "argoproj/argo-workflows/v4.1.2/manifests/base/crds/full/argoproj.io_workflowtemplates.yaml",
        "e932631a04a0f3a226b2ca8c68d43214c071c5d8aa6961b23298b81cbea3d9a5",
    ),
    "argo-workflows-v4.1.2/argoproj.io_cronworkflows.yaml": (
        "argoproj/argo-workflows/v4.1.2/manifests/base/crds/full/argoproj.io_cronworkflows.yaml",
        "31abde1c89c6c11cf1c97753676327e02b2f8dc47827e49383732ac6b1d828c6",
    ),
    "kserve-v0.20.0/serving.kserve.io_inferenceservices.yaml": (
        "kserve/kserve/v0.20.0/config/crd/full/serving.kserve.io_inferenceservices.yaml",
        "57c3bf13f77de94678bf2ae3748056ec071ad2b9e88d6a28f44fb4710758fcff",
    ),
    "kserve-v0.20.0/serving.kserve.io_servingruntimes.yaml": (
        "kserve/kserve/v0.20.0/config/crd/full/serving.kserve.io_servingruntimes.yaml",
        "380a3e1e1444cef9b8b88819596692728868205a2147dc66423be469a4a7bbb1",
    ),
    "kserve-v0.20.0/serving.kserve.io_clusterservingruntimes.yaml": (
        "kserve/kserve/v0.20.0/config/crd/full/serving.kserve.io_clusterservingruntimes.yaml",
        "c6f6bbb1b4b11afd1e38bd6d7255a8795b86efa2b7d14946ccff9d23592e6846",
    ),
}


class ManifestError(ValueError):
    pass


def crd_dir() -> Path | None:
    """The first folder that holds every pinned CRD with the pinned checksum."""
    candidates = [
        os.environ.get("MLENV_CRD_DIR"),
        str(ROOT.parent / "shared" / "crds"),
        # The workplace's copy, for clones that do not sit beside it (CI clones elsewhere).
        "/work/shared/crds",
        str(CACHE),
    ]
    for candidate in filter(None, candidates):
        folder = Path(candidate)
        if all((folder / name).is_file() for name in CRD_PINS):
            for name, (_, sha256) in CRD_PINS.items():
                found = hashlib.sha256((folder / name).read_bytes()).hexdigest()
                if found != sha256:
                    raise ManifestError(f"{folder / name}: sha256 {found}, pinned {sha256}")
            return folder
    return None


def strict(schema: Any) -> Any:
    """The schema with additionalProperties: false on every object that lists its properties and
    does not preserve unknown fields, so a misspelled field fails instead of being dropped."""
    if isinstance(schema, list):
        return [strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    result = {key: strict(value) for key, value in schema.items()}
    if (
        "properties" in result
        and "additionalProperties" not in result
        and not result.get("x-kubernetes-preserve-unknown-fields")
    ):
        result["additionalProperties"] = False
    return result


@cache
def crd_validators() -> dict[tuple[str, str], Any]:
    """(apiVersion, kind) -> a jsonschema validator of the CRD's strict schema."""
    from jsonschema import Draft7Validator

    folder = crd_dir()
    if folder is None:
        raise ManifestError("no CRD schemas: set MLENV_CRD_DIR or run scripts/fetch-crds")
    validators = {}
    for name in CRD_PINS:
        crd = yaml.safe_load((folder / name).read_text())
        for version in crd["spec"]["versions"]:
            schema = copy.deepcopy(version["schema"]["openAPIV3Schema"])
            api_version = f"{crd['spec']['group']}/{version['name']}"
            validators[(api_version, crd["spec"]["names"]["kind"])] = Draft7Validator(strict(schema))
    return validators


def validate(manifest: dict[str, Any], kubernetes_version: str = KUBERNETES_VERSIONS[-1]) -> None:
    """Raise ManifestError naming the object and the first problems; return when the manifest is valid."""
    import kubernetes_validate

    name = f"{manifest.get('kind')}/{(manifest.get('metadata') or {}).get('name')}"
    key = (manifest.get("apiVersion", ""), manifest.get("kind", ""))
    if key[0].split("/")[0] in {"argoproj.io", "serving.kserve.io"}:
        validator = crd_validators().get(key)
        if validator is None:
            raise ManifestError(f"{name}: no pinned CRD schema for {key[0]} {key[1]}")
        problems = sorted(validator.iter_errors(manifest), key=lambda error: list(error.absolute_path))
        if problems:
            details = "; ".join(f"{'.'.join(map(str, p.absolute_path)) or '(root)'}: {p.message}" for p in problems[:5])
            raise ManifestError(f"{name}: {details}")
        return
    try:
        kubernetes_validate.validate(manifest, kubernetes_version, strict=True)
    except kubernetes_validate.ValidationError as err:
        path = ".".join(map(str, err.path)) or "(root)"
        raise ManifestError(f"{name} (Kubernetes {kubernetes_version}): {path}: {err.message}") from None
    except kubernetes_validate.SchemaNotFoundError as err:
        raise ManifestError(f"{name}: no Kubernetes schema ({err})") from None


def documents(folder: Path) -> Iterator[tuple[Path, dict[str, Any]]]:
    """Every object in the YAML files of a folder (multi-document files included)."""
    for path in sorted(folder.rglob("*.y*ml")):
        for document in yaml.safe_load_all(path.read_text()):
            if document:
                yield path, document
