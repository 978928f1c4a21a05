"""Input rules defined once, in the roles that enforce them, and read here by the config models.

A role's `vars/main.yml` holds its patterns (`_object_store_bucket_pattern`, …) and its
`defaults/main.yml` its pins; mlenv.yaml is checked against the same values, so the command
refuses up front exactly what a role would refuse later, and no regex is written twice.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import yaml

ROLES = Path(__file__).resolve().parents[2] / "ansible/roles"


@cache
def _role_file(role: str, kind: str) -> dict[str, Any]:
    path = ROLES / role / kind / "main.yml"
    return yaml.safe_load(path.read_text()) or {} if path.is_file() else {}


def role_pattern(role: str, name: str) -> str:
    """A `_<role>_<name>_pattern` of the role's vars."""
    return str(_role_file(role, "vars")[f"_{role}_{name}_pattern"])


def role_default(role: str, name: str) -> Any:
    return _role_file(role, "defaults")[f"{role}_{name}"]
