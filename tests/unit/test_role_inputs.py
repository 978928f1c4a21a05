"""Wrong inputs to every role stop the run before any change, saying what to fix.

Cases live in tests/unit/role_inputs/<role>.yml: a `valid` input, which must pass
validation (the positive control), and `bad` cases, each with the variables merged over
`valid` and a piece of the message the run must stop with.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.role_input import validate_role

CASES_DIR = Path(__file__).parent / "role_inputs"


def load_cases() -> dict[str, dict]:
    return {path.stem: yaml.safe_load(path.read_text()) for path in sorted(CASES_DIR.glob("*.yml"))}


CASES = load_cases()
BAD = [(role, case) for role, doc in CASES.items() for case in doc["bad"]]


@pytest.mark.parametrize("role", sorted(CASES))
def test_valid_input_passes_validation(role, tmp_path, tool_env):
    run = validate_role(role, CASES[role]["valid"], workdir=tmp_path, env=tool_env)
    assert run.returncode == 0, run.output
    assert run.changed == 0


@pytest.mark.parametrize(("role", "case"), BAD, ids=[f"{role}: {case}" for role, case in BAD])
def test_bad_input_fails_before_any_change(role, case, tmp_path, tool_env):
    bad = CASES[role]["bad"][case]
    run = validate_role(role, {**CASES[role]["valid"], **bad["vars"]}, workdir=tmp_path, env=tool_env)
    assert run.returncode != 0, f"{case} was accepted:\n{run.output}"
    assert run.failed == 1 and run.changed == 0, run.output
    assert " ".join(bad["expect"].split()) in run.message, run.output
