"""What the mlflow and label_studio scenarios check after upgrading from the release before
(requirements/upgrade-from.yml): the releases side by side, the dumps taken first, the data read back."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tests.helpers.hostpython import run_python

ROOT = Path(__file__).resolve().parents[2]
DATA_SCRIPT = "/root/upgrade_data.py"


def versions(role: str, key: str) -> tuple[str, str]:
    """(the release upgraded from, the current pin) of a role's version variable."""
    previous = yaml.safe_load((ROOT / "requirements/upgrade-from.yml").read_text())[key]
    current = yaml.safe_load((ROOT / f"ansible/roles/{role}/defaults/main.yml").read_text())[key]
    assert previous != current, f"{key}: the release upgraded from is the current one"
    return previous, current


def read_back(host: Any, venv: str, env: dict[str, str]) -> dict[str, Any]:
    """What the scenario's data script (its prepare installed it) reads from the service now."""
    source = f"import runpy, sys; sys.argv = ['', 'read']; runpy.run_path('{DATA_SCRIPT}', run_name='__main__')"
    return run_python(host, f"{venv}/bin/python", source, env)


def check_releases(host: Any, folder: str, previous: str, current: str) -> None:
    """The service runs the current release; the one before stays beside it, and no other."""
    link = host.file(f"{folder}/venv")
    assert link.is_symlink and link.linked_to == f"{folder}/releases/{current}"
    assert host.file(f"{folder}/releases/{previous}/bin/python").exists
    # Beside each release, pip_venv keeps its launcher, requirements and lock files: the folders are the releases.
    releases = host.check_output(f"find {folder}/releases -mindepth 1 -maxdepth 1 -type d -printf '%f\\n'")
    assert sorted(releases.split()) == sorted([previous, current])


def check_dumps(host: Any, unit: str, previous: str, current: str, tables: dict[str, str]) -> None:
    """Each database (name: a table it holds) was dumped in PostgreSQL's custom format before the upgrade,
    into a folder only root reads, the dumps of this upgrade only."""
    base = f"/var/backups/mlenv-upgrades/{unit}"
    assert host.file(base).listdir() == [f"{previous}-to-{current}"]
    folder = host.file(f"{base}/{previous}-to-{current}")
    assert (folder.user, folder.mode) == ("root", 0o700)
    for name, table in tables.items():
        listing = host.check_output(f"pg_restore --list {folder.path}/{name}.pgc")
        assert f"TABLE public {table} " in listing, f"{name}.pgc holds no table {table}"
