"""No secret reaches a process's command line (`ps` shows it to every user of the host): no command a
role runs, and no service's start command, refers to a secret, however many variables lie between.
Secrets go by file (an EnvironmentFile systemd reads) or standard input; a task's `environment` is no
way: Ansible writes it into the module's command line. Read from the roles' own files, so a new task
is checked too."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from tests.conftest import ROLES_DIR

COMMAND_MODULES = {"ansible.builtin.command", "ansible.builtin.shell", "ansible.builtin.raw", "ansible.builtin.script"}
# Options whose value becomes a command line: the unit helper's start commands.
COMMAND_VARS = {"systemd_service_exec_start", "systemd_service_exec_start_pre"}
REFERENCE = re.compile(r"\b([a-z_][a-z0-9_]*)\b")
QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")


def is_secret(name: str) -> bool:
    """A variable named for a secret, not for where one is kept."""
    named = re.search(r"password|token|secret|passphrase|(^|_)key$", name)
    return bool(named) and not re.search(r"(_dir|_file|_files|_path)$", name)


def role_variables() -> dict[str, str]:
    """Every role's defaults and vars, as the text they are defined by."""
    found: dict[str, str] = {}
    for path in [*ROLES_DIR.glob("*/defaults/main.yml"), *ROLES_DIR.glob("*/vars/main.yml")]:
        for name, value in (yaml.safe_load(path.read_text()) or {}).items():
            found[name] = value if isinstance(value, str) else yaml.safe_dump(value)
    return found


def references(text: str) -> set[str]:
    """The names an expression refers to (string literals, such as a file's name, are no references)."""
    return {name for block in re.findall(r"{{(.*?)}}|{%(.*?)%}", text, re.S) for part in block
            for name in REFERENCE.findall(QUOTED.sub("''", part))}  # fmt: skip


def secrets_behind(text: str, variables: dict[str, str], seen: set[str] | None = None) -> set[str]:
    seen = set() if seen is None else seen
    found: set[str] = set()
    for name in references(text) - seen:
        seen.add(name)
        if is_secret(name):
            found.add(name)
        elif name in variables:
            found |= secrets_behind(variables[name], variables, seen)
    return found


def tasks_in(items: list[dict[str, Any]] | None) -> Iterator[dict[str, Any]]:
    for item in items or []:
        yield item
        for section in ("block", "rescue", "always"):
            yield from tasks_in(item.get(section))


def command_lines() -> Iterator[tuple[str, str]]:
    """(where, text) of every command line a role's tasks give."""
    for path in sorted(ROLES_DIR.glob("*/tasks/*.yml")):
        for task in tasks_in(yaml.safe_load(path.read_text())):
            where = f"{path.relative_to(ROLES_DIR)}: {task.get('name')}"
            for module in sorted(COMMAND_MODULES & set(task)):
                arguments = task[module]
                if isinstance(arguments, dict):
                    arguments = {
                        key: value for key, value in arguments.items() if key in {"argv", "cmd", "_raw_params"}
                    }
                yield where, yaml.safe_dump(arguments)
            for name in sorted(COMMAND_VARS & set(task.get("vars") or {})):
                yield where, yaml.safe_dump(task["vars"][name])
            # Ansible puts a task's `environment` on the module's command line (`/bin/sh -c 'NAME=value
            # python3 ...'`): it is a command line too, with the task's own variables behind it.
            if "environment" in task:
                yield f"{where} (environment)", yaml.safe_dump([task["environment"], task.get("vars") or {}])
    for path in sorted(ROLES_DIR.glob("*/templates/*.cmd.j2")):
        yield str(path.relative_to(ROLES_DIR)), path.read_text()


def test_the_check_knows_a_secret_when_it_sees_one():
    variables = {"_db_uri": "{{ user }}:{{ db_password | urlencode }}@host", "db_password": "x"}
    assert secrets_behind("mlflow db upgrade {{ _db_uri }}", variables) == {"db_password"}
    assert secrets_behind("--config={{ label_studio_secrets_dir }}/x {{ proxy_tls_key_file }}", variables) == set()
    assert is_secret("label_studio_s3_secret_key") and is_secret("_object_store_api_token")
    # A file's name in quotes is no reference; the variable beside it still is.
    assert secrets_behind("{{ dir ~ '/server.key' }} {{ 'x' ~ db_password }}", variables) == {"db_password"}
    assert len(list(command_lines())) >= 10
    assert any(where.endswith("(environment)") for where, _ in command_lines())


@pytest.mark.parametrize(("where", "text"), list(command_lines()), ids=lambda value: str(value)[:80])
def test_no_command_line_refers_to_a_secret(where, text):
    found = secrets_behind(text, role_variables())
    assert not found, f"{where}: the command line carries {sorted(found)}; pass it by a file or standard input"
