"""Shared fixtures: where the project is, and the environment its tools need."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

import pytest
import yaml

# A failed testinfra test shows the journal of the units its module names.
pytest_plugins = ["tests.helpers.journal"]

PROJECT_ROOT = Path(__file__).resolve().parent.parent
ROLES_DIR = PROJECT_ROOT / "ansible/roles"
VENV_BIN = Path(sys.executable).parent


def module_from(path: Path, name: str) -> ModuleType:
    """A Python file of the project that is not in a package (a filter plugin, a role's script)."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def playbook_filters(name: str) -> ModuleType:
    """A filter plugin of ansible/playbooks, imported as Ansible would load it."""
    return module_from(PROJECT_ROOT / f"ansible/playbooks/filter_plugins/{name}.py", name)


def converged_roles(scenario: Path) -> set[str]:
    """The roles a molecule scenario converges (its converge.yml's plays)."""
    plays = yaml.safe_load((scenario / "converge.yml").read_text())
    return {entry["role"] for play in plays for entry in play.get("roles", [])}


def role_names() -> list[str]:
    return sorted(path.parent.parent.name for path in ROLES_DIR.glob("*/meta/argument_specs.yml"))


@pytest.fixture(scope="session")
def tool_env() -> dict[str, str]:
    """The environment Ansible, molecule and podman need, wherever pytest was started."""
    # Output as in a log, whatever runs pytest: test workers (pytest -n) are handed COLUMNS=80.
    env = {key: value for key, value in os.environ.items() if key not in {"COLUMNS", "LINES"}}
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("CONTAINERS_CONF", str(PROJECT_ROOT / ".config/containers/containers.conf"))
    env["ANSIBLE_CONFIG"] = str(PROJECT_ROOT / "ansible.cfg")
    env["ANSIBLE_NOCOLOR"] = "1"
    env["NO_COLOR"] = "1"
    env["PY_COLORS"] = "0"
    return env


E2E_DIR = PROJECT_ROOT / "tests/e2e"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under `pytest -n` (make test) the e2e tests are one group, kept on one worker with their one
    stack, and the longest work is handed out first: the e2e group, then the scenarios by the number
    of roles they converge, then the quick tests, which fill in beside them."""
    for item in items:
        if E2E_DIR in Path(item.path).parents:
            item.add_marker(pytest.mark.xdist_group("e2e-stack"))
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return  # one process: collection order, quick tests first

    def weight(item: pytest.Item) -> int:
        if E2E_DIR in Path(item.path).parents:
            return 1000
        scenario = getattr(item, "callspec", None) and item.callspec.params.get("scenario")
        return len(converged_roles(scenario)) if isinstance(scenario, Path) else 0

    items.sort(key=weight, reverse=True)
