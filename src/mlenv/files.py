"""Files of the state folder that only their owner may read, and folders of files checked against a manifest."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path


def write_private(path: Path, text: str) -> Path:
    """Write a 0600 file (created so, never readable by others for a moment) in a 0700 folder."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text)
    path.chmod(0o600)
    return path


def damaged(folder: Path, listed: Iterable[tuple[str, int, str]]) -> list[str]:
    """One line per listed file (relative name, size, sha256) that is missing or not as listed."""
    from mlenv.encryption import sha256_of

    problems = []
    for name, size, sha256 in listed:
        path = folder / name
        if not path.is_file():
            problems.append(f"{name}: missing")
        elif path.stat().st_size != size:
            problems.append(f"{name}: {path.stat().st_size} bytes, the manifest says {size}")
        elif sha256_of(path) != sha256:
            problems.append(f"{name}: its checksum differs from the manifest's")
    return problems
