"""Every role documents exactly the options it has: defaults/main.yml and meta/argument_specs.yml agree."""

from __future__ import annotations

import pytest
import yaml

from tests.conftest import ROLES_DIR, role_names


def load(role: str, relative: str) -> dict:
    return yaml.safe_load((ROLES_DIR / role / relative).read_text()) or {}


def spec_options(role: str) -> dict:
    """The options of every entry point (a helper's `certificate` entry point has options of its own)."""
    options: dict = {}
    for entry_point in load(role, "meta/argument_specs.yml")["argument_specs"].values():
        options |= entry_point.get("options", {})
    return options


def test_there_are_roles_to_check():
    assert "postgresql" in role_names()


@pytest.mark.parametrize("role", role_names())
def test_defaults_and_spec_list_the_same_options(role):
    defaults = set(load(role, "defaults/main.yml"))
    options = spec_options(role)
    optional = {name for name, option in options.items() if not option.get("required")}
    assert defaults - set(options) == set(), f"{role}: defaults without a spec entry"
    assert optional - defaults == set(), f"{role}: optional spec entries without a default"
    # A default would silently satisfy `required`, so required options have none.
    assert defaults & (set(options) - optional) == set(), f"{role}: required options must not have defaults"


@pytest.mark.parametrize("role", role_names())
def test_literal_defaults_match_the_spec(role):
    defaults = load(role, "defaults/main.yml")
    for name, option in spec_options(role).items():
        if option.get("required"):
            continue
        value = defaults[name]
        if isinstance(value, str) and "{{" in value:
            continue  # templated defaults are resolved at run time; the spec states the usual result
        assert option.get("default") == value, (
            f"{role}: {name} defaults to {value!r}, the spec says {option.get('default')!r}"
        )


@pytest.mark.parametrize("role", role_names())
def test_every_option_is_described_and_typed(role):
    for name, option in spec_options(role).items():
        assert option.get("description"), f"{role}: {name} has no description"
        assert option.get("type"), f"{role}: {name} has no type"
        assert name.startswith(f"{role}_"), f"{role}: {name} is not prefixed with the role name"
