"""Whether a run's inputs are the ones the last successful `mlenv up` checked up front.

The up-front pass (site.yml's "Check every role's inputs") exists so that a bad setting stops the run
before any host changes. Once a run with exactly these inputs succeeded, that pass cannot find anything
new, so the next run skips it and each role checks itself when its play starts, as a role run alone
does: the no-op re-converge stays as fast as it was before the up-front pass existed. The inputs are
every inventory source (with its group_vars and host_vars), the playbooks, and what the roles check
with (defaults, vars, argument specs, preflight tasks, filters).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

from mlenv.files import write_private

RECORD = "inputs-checked.sha256"
MARKER = "mlenv-inputs-unchanged.yml"
ROLE_PARTS = ("defaults", "vars", "meta", "filter_plugins", "tasks/preflight.yml")


def _files(path: Path) -> Iterator[Path]:
    if path.is_file():
        yield path
    elif path.is_dir():
        yield from sorted(found for found in path.rglob("*") if found.is_file() and "__pycache__" not in found.parts)


def input_files(root: Path, sources: list[Path]) -> list[Path]:
    found: list[Path] = []
    for source in sources:
        found += _files(source)
        if source.is_file():
            for beside in ("group_vars", "host_vars"):
                found += _files(source.parent / beside)
    found += _files(root / "ansible/playbooks")
    for role in sorted((root / "ansible/roles").iterdir()):
        for part in ROLE_PARTS:
            found += _files(role / part)
    return found


def digest(root: Path, sources: list[Path]) -> str:
    total = hashlib.sha256()
    for path in input_files(root, sources):
        total.update(str(path).encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    return total.hexdigest()


def checked_before(state: Path, found: str) -> bool:
    record = state / RECORD
    return record.is_file() and record.read_text().strip() == found


def marker_layer(state: Path) -> Path:
    """The inventory source that tells site.yml these inputs passed before."""
    return write_private(state / MARKER, "all:\n  vars:\n    mlenv_inputs_unchanged: true\n")


def remember(state: Path, found: str) -> None:
    write_private(state / RECORD, found + "\n")
