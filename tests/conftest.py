"""Shared fixtures: where the project is, and the environment its tools need."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

import pytest
import yaml

# A failed testinfra test shows the journal of the units its module names; measured figures are kept.
pytest_plugins = ["tests.helpers.journal", "tests.helpers.figures"]

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
OFFLINE_DIR = PROJECT_ROOT / "tests/offline"


def test_scope(nodeid: str) -> str:
    """What one worker runs together under `pytest -n` (make test): every e2e test, with the one stack
    they share; each role scenario on its own (a host each); any other module whole (its fixtures)."""
    if nodeid.startswith("tests/e2e/"):
        return "tests/e2e"
    if nodeid.startswith("tests/roles/"):
        return nodeid
    return nodeid.split("::", 1)[0]


def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object | None:
    # Our own scopes, not xdist_group marks: pytest 9.2's structured node ids lose xdist's group suffix
    # (pytest-dev/pytest-xdist#1386), which would start the e2e stack on two workers at once.
    if config.getvalue("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class PlatformScopes(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return test_scope(nodeid)

    return PlatformScopes(config, log)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under `pytest -n` the longest work is handed out first, in this order (the scheduler keeps it:
    --no-loadscope-reorder): the e2e tests, the offline converge (every role, once), then the scenarios by
    the number of roles they converge, then the quick tests, which fill in beside them. One process keeps
    collection order."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return

    def weight(item: pytest.Item) -> int:
        if E2E_DIR in Path(item.path).parents:
            return 1000
        if OFFLINE_DIR in Path(item.path).parents:
            return 900
        scenario = getattr(item, "callspec", None) and item.callspec.params.get("scenario")
        return len(converged_roles(scenario)) if isinstance(scenario, Path) else 0

    items.sort(key=weight, reverse=True)
