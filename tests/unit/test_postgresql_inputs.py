"""Wrong inputs to the postgresql role stop the run before any change, saying what to fix."""

from __future__ import annotations

import pytest

from tests.role_input import validate_role

VALID = {
    "postgresql_users": [{"name": "mlflow"}, {"name": "reporter", "password": "a" * 16, "hosts": ["10.0.0.0/24"]}],
    "postgresql_databases": [{"name": "mlflow", "owner": "mlflow"}],
}


def with_changes(**changes) -> dict:
    return {**VALID, **changes}


BAD_INPUTS = {
    "database name with a dash": (
        with_changes(postgresql_databases=[{"name": "ml-flow", "owner": "mlflow"}]),
        "'ml-flow' owned by 'mlflow': a database name is lower-case letters",
    ),
    "unknown auth method": (
        with_changes(postgresql_auth_method="md5"),
        "value of postgresql_auth_method must be one of: scram-sha-256, got: md5",
    ),
    "database without owner": (
        with_changes(postgresql_databases=[{"name": "mlflow"}]),
        "missing required arguments: owner found in postgresql_databases",
    ),
    "owner that is not a listed user": (
        with_changes(postgresql_databases=[{"name": "mlflow", "owner": "nobody"}]),
        "the owner must be listed in postgresql_users",
    ),
    "port out of range": (
        with_changes(postgresql_port=70000),
        "postgresql_port=70000 is out of range; use an unprivileged port from 1024 to 65535",
    ),
    "privileged port": (
        with_changes(postgresql_port=80),
        "postgresql_port=80 is out of range",
    ),
    "port that is not a number": (
        with_changes(postgresql_port="fivefourthreetwo"),
        "argument 'postgresql_port' is of type str and we were unable to convert to int",
    ),
    "password too short": (
        with_changes(postgresql_users=[{"name": "mlflow", "password": "short"}]),
        "the password given for 'mlflow' is shorter than 16 characters",
    ),
    "user name with upper case": (
        with_changes(postgresql_users=[{"name": "MLflow"}], postgresql_databases=[]),
        "'MLflow' is not a valid role name",
    ),
    "client network that is not CIDR": (
        with_changes(postgresql_users=[{"name": "mlflow", "hosts": ["10.0.0.1"]}]),
        "'10.0.0.1' for 'mlflow' is not a network in CIDR form",
    ),
    "same database twice": (
        with_changes(
            postgresql_databases=[{"name": "mlflow", "owner": "mlflow"}, {"name": "mlflow", "owner": "mlflow"}]
        ),
        "postgresql_databases lists a name twice",
    ),
    "version the distribution does not package": (
        with_changes(postgresql_version="16"),
        "postgresql_version=16 is not packaged by Debian 12",
    ),
    "extra hba entry with a weak method": (
        with_changes(
            postgresql_hba_extra=[
                {"type": "host", "database": "all", "user": "all", "address": "0.0.0.0/0", "method": "trust"}
            ]
        ),
        "value of method must be one of: scram-sha-256, cert, reject, got: trust",
    ),
    "memory share over 100 percent": (
        with_changes(postgresql_memory_share_percent=150),
        "postgresql_memory_share_percent=150 must be a percentage from 1 to 100",
    ),
    "no listen address": (
        with_changes(postgresql_listen_addresses=[]),
        "postgresql_listen_addresses is empty",
    ),
}


def test_valid_input_passes_validation(tmp_path, tool_env):
    run = validate_role("postgresql", VALID, workdir=tmp_path, env=tool_env)
    assert run.returncode == 0, run.output
    assert run.changed == 0


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_fails_before_any_change(case, tmp_path, tool_env):
    role_vars, expected = BAD_INPUTS[case]
    run = validate_role("postgresql", role_vars, workdir=tmp_path, env=tool_env)
    assert run.returncode != 0, f"{case} was accepted:\n{run.output}"
    assert run.failed == 1 and run.changed == 0, run.output
    assert expected in run.message, run.output
