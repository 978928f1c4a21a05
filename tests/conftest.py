"""Shared fixtures: where the project is, and the environment its tools need."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

import pytest

# A failed testinfra test shows the journal of the units its module names.
pytest_plugins = ["tests.helpers.journal"]

PROJECT_ROOT = Path(__file__).resolve().parent.parent
ROLES_DIR = PROJECT_ROOT / "ansible/roles"
VENV_BIN = Path(sys.executable).parent


def playbook_filters(name: str) -> ModuleType:
    """A filter plugin of ansible/playbooks, imported as Ansible would load it."""
    spec = importlib.util.spec_from_file_location(name, PROJECT_ROOT / f"ansible/playbooks/filter_plugins/{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def role_names() -> list[str]:
    return sorted(path.parent.parent.name for path in ROLES_DIR.glob("*/meta/argument_specs.yml"))


@pytest.fixture(scope="session")
def tool_env() -> dict[str, str]:
    """The environment Ansible, molecule and podman need, wherever pytest was started."""
    env = dict(os.environ)
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("CONTAINERS_CONF", str(PROJECT_ROOT / ".config/containers/containers.conf"))
    env["ANSIBLE_CONFIG"] = str(PROJECT_ROOT / "ansible.cfg")
    env["ANSIBLE_NOCOLOR"] = "1"
    env["NO_COLOR"] = "1"
    env["PY_COLORS"] = "0"
    return env
