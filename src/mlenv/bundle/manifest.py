"""bundle.json: what a bundle holds, for whom, and every file's size and sha256.

One writer (`mlenv bundle`) and two readers: `mlenv bundle --verify` checks the files against it, and
the hosts' package_sources role reads its Debian repositories and target from it over HTTP.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from mlenv.config import BUNDLE_PYTHON_INDEX as PYTHON_INDEX
from mlenv.encryption import sha256_of
from mlenv.errors import UserError
from mlenv.files import damaged

MANIFEST = "bundle.json"
FORMAT = 1


class BundleError(UserError):
    pass


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AptRepository(Model):
    """One Debian archive root, mirrored at `path` below the bundle with its signed indexes."""

    path: str
    suites: list[str]
    components: list[str]
    # The keyring that verifies its InRelease files, on the hosts (Debian's own, in debian-archive-keyring).
    signed_by: str


class Venv(Model):
    """One virtualenv's downloads: from its lock (hash-checked on the hosts) or its pins alone."""

    requirements: list[str]
    locked: bool
    files: list[str]


class FileRecord(Model):
    size: int
    sha256: str


class Manifest(Model):
    format: Literal[1] = FORMAT
    created: datetime
    mlenv: str
    # The hosts it is for: Debian's codename (bookworm), dpkg's architecture, CPython's version.
    distribution: str
    architecture: str
    python: str
    apt_repositories: list[AptRepository]
    apt_packages: list[str]
    python_index: str = PYTHON_INDEX
    venvs: dict[str, Venv]
    # Binaries the roles download by URL, by tool: where the bundle keeps each (checked against its sha256).
    binaries: dict[str, str] = {}
    # A cluster's upstream manifests the roles apply, by name: where the bundle keeps each (sha256 checked).
    manifests: dict[str, str] = {}
    images: list[str]
    files: dict[str, FileRecord]


def record(root: Path, relative: str) -> FileRecord:
    path = root / relative
    return FileRecord(size=path.stat().st_size, sha256=sha256_of(path))


def write(root: Path, manifest: Manifest) -> Path:
    path = root / MANIFEST
    partial = path.with_suffix(".json.partial")
    partial.write_text(manifest.model_dump_json(indent=2) + "\n")
    # Written last and by rename: a bundle with a manifest is a complete bundle.
    partial.replace(path)
    return path


def read(root: Path) -> Manifest:
    path = root / MANIFEST
    if not path.is_file():
        raise BundleError(f"{root} is not a bundle (no {MANIFEST}): make one with `mlenv bundle {root}`")
    try:
        return Manifest.model_validate_json(path.read_text())
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise BundleError(f"{path} is not a bundle manifest mlenv reads ({where}: {first['msg']})") from None


def verify(root: Path) -> Manifest:
    """The manifest, once every file it lists is there with its size and sha256; else every problem."""
    manifest = read(root)
    listed = sorted(manifest.files.items())
    problems = damaged(root, ((name, expected.size, expected.sha256) for name, expected in listed))
    if problems:
        raise BundleError(
            f"the bundle {root} is incomplete or altered ({len(problems)} of {len(manifest.files)} files)",
            problems=problems[:20] + ([f"… and {len(problems) - 20} more"] if len(problems) > 20 else []),
        )
    return manifest
