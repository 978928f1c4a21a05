"""A backup's manifest: what each part holds (counts), and its checksums before and after encryption.

One writer (`backup.create`, last, after every part is sealed) and one reader (`read`). A folder
without a manifest is a backup that did not finish; every check here runs before a restore
changes anything.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from mlenv.errors import UserError
from mlenv.files import damaged

MANIFEST = "manifest.json"
FORMAT = 1


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Part(_Model):
    # "postgresql/mlflow", "objects/datasets", "label_studio/media", "secrets"
    name: str
    # Relative to the backup's folder; encrypted.
    file: str
    bytes: int
    sha256: str
    plain_sha256: str
    counts: dict[str, Any]

    @property
    def kind(self) -> str:
        return self.name.split("/", 1)[0]

    @property
    def subject(self) -> str:
        return self.name.split("/", 1)[-1]


class Manifest(_Model):
    format: Literal[1] = FORMAT
    environment: str
    created: datetime
    mlenv_version: str
    recipient: str
    parts: list[Part]

    def of_kind(self, kind: str) -> list[Part]:
        return [part for part in self.parts if part.kind == kind]


def read(folder: Path) -> Manifest:
    if folder.name.endswith(".partial"):
        raise UserError(f"{folder} is a backup that did not finish; choose a complete one (mlenv backup --list)")
    path = folder / MANIFEST
    if not path.is_file():
        if not folder.is_dir():
            raise UserError(f"no backup at {folder}")
        raise UserError(f"{folder} has no {MANIFEST}: it is not a complete backup")
    try:
        return Manifest.model_validate_json(path.read_text())
    except (ValueError, ValidationError) as err:
        detail = str(err).splitlines()[0]
        raise UserError(f"{path} is not a manifest this mlenv wrote ({detail})") from None


def check_files(folder: Path, manifest: Manifest) -> None:
    """Every part is there, whole: sizes and checksums as the manifest says."""
    problems = damaged(folder, ((part.file, part.bytes, part.sha256) for part in manifest.parts))
    if problems:
        raise UserError(f"the backup {folder} is damaged or partial; nothing was changed", problems=problems)
