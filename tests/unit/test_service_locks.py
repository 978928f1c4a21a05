"""The services' virtualenvs install from locks with hashes: each lock is of exactly the requirements
its role hands to pip_venv today (else pip_venv would fall back to the bare pins), and pins every
package of the closure with at least one sha256."""

from __future__ import annotations

import hashlib
import re
import subprocess
from pathlib import Path

import pytest

from tests.conftest import PROJECT_ROOT

LOCKS = PROJECT_ROOT / "requirements/services"
# The training project's lock goes with the project.
TRAINING_LOCK = PROJECT_ROOT / "templates/ml-project/requirements.lock"


def lock_of(name: str) -> Path:
    return TRAINING_LOCK if name == "ml-loop-train" else LOCKS / f"{name}.txt"


HEADER = re.compile(r"# mlenv-lock-inputs-sha256: ([0-9a-f]{64})\n")


UPGRADE_FROM = LOCKS / "upgrade-from"


def requirements_of_the_roles(out: Path, tool_env: dict[str, str], *extra: str) -> dict[str, bytes]:
    result = subprocess.run(
        ["ansible-playbook", "-i", "localhost,", str(PROJECT_ROOT / "ansible/playbooks/artifacts.yml"),
         "-e", f"output_dir={out}", "-e", f"ml_loop_project_dir={PROJECT_ROOT / 'templates/ml-project'}",
         "-e", "ansible_python_interpreter={{ ansible_playbook_python }}", *extra],
        env=tool_env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:]
    return {path.stem: path.read_bytes() for path in out.glob("*.in")}


@pytest.fixture(scope="module")
def role_requirements(tmp_path_factory: pytest.TempPathFactory, tool_env: dict[str, str]) -> dict[str, bytes]:
    found = requirements_of_the_roles(tmp_path_factory.mktemp("service-requirements"), tool_env)
    assert len(found) == 6, sorted(found)
    return found


def inputs_digest(lock: Path) -> str:
    header = HEADER.match(lock.read_text())
    assert header, f"{lock} has no inputs line"
    return header[1]


def test_every_lock_is_of_the_requirements_its_role_installs_now(role_requirements: dict[str, bytes]) -> None:
    assert sorted([*(path.stem for path in LOCKS.glob("*.txt")), "ml-loop-train"]) == sorted(role_requirements)
    for name, requirements in role_requirements.items():
        assert inputs_digest(lock_of(name)) == hashlib.sha256(requirements).hexdigest(), (
            f"{name}.txt is stale: run make service-locks"
        )


def test_the_releases_upgraded_from_are_locked_too(tmp_path: Path, tool_env: dict[str, str]) -> None:
    """The mlflow and label_studio scenarios install the pins of requirements/upgrade-from.yml first, from these."""
    previous = requirements_of_the_roles(tmp_path, tool_env, "-e", f"@{PROJECT_ROOT / 'requirements/upgrade-from.yml'}")
    assert sorted(path.stem for path in UPGRADE_FROM.glob("*.txt")) == ["label-studio", "mlflow"]
    for lock in UPGRADE_FROM.glob("*.txt"):
        assert inputs_digest(lock) == hashlib.sha256(previous[lock.stem]).hexdigest(), f"{lock} is stale"
        assert inputs_digest(lock) != inputs_digest(LOCKS / lock.name), f"{lock}: the same pins as the current ones"


@pytest.mark.parametrize(
    "lock",
    [*sorted(LOCKS.glob("*.txt")), *sorted(UPGRADE_FROM.glob("*.txt")), TRAINING_LOCK],
    ids=lambda path: str(path.relative_to(PROJECT_ROOT)),
)
def test_every_package_is_pinned_with_its_hashes(lock: Path) -> None:
    # One requirement per entry: "name==version [; marker] \" and its --hash lines, then "# via" comments.
    entries = re.split(r"\n(?=[A-Za-z0-9])", lock.read_text().split("\n", 2)[2].strip())
    assert len(entries) >= 5
    for entry in entries:
        first = entry.splitlines()[0]
        assert re.match(r"^[A-Za-z0-9_.\[\],-]+==[^ ;]+( ; .+)? \\$", first), first
        assert re.search(r"--hash=sha256:[0-9a-f]{64}", entry), first
