"""The runbooks run as written on the shared stack: the blocks no other e2e test runs are run here
(reaching the services from a shell; a service down, diagnosed and brought back), and the last test
of the run checks that every block of the pages the index says the tests run did run (the others
run in the tests of what they do: up, status, down and purge in test_local_stack, rotation, backup and
restore in test_backup_restore, datasets, training, lineage and rollback in test_loop, the loop's runs,
predictions and rollback in test_loop_service, its report in test_assisted_labelling, the upgrade in
test_upgrade)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.e2e.conftest import HOST, STATUS_SERVICES
from tests.helpers import runbooks


def test_a_shell_reaches_the_services_with_the_variables_mlenv_credentials_gives(stack):
    # The page adds the names to /etc/hosts: here that is a copy, in a mount namespace of the block's own.
    machines_hosts = Path("/etc/hosts").read_text()
    done = runbooks.run(
        runbooks.block("local-environment.md", "Reach the services"),
        {name: value for name, value in stack.env.items() if not name.endswith("_CA_BUNDLE")},
        hosts="",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    # `mlflow experiments search` through the proxy with the CA it was given: the default experiment.
    assert "Default" in done.stdout, done.stdout
    for secret in ("mlflow/admin_password", "object_store/admin.secret_key", "label_studio/api_token"):
        assert stack.secret(secret) not in done.stdout + done.stderr
    assert Path("/etc/hosts").read_text() == machines_hosts


def test_a_stopped_service_is_found_explained_and_brought_back_by_the_runbook(stack):
    unit = "mlenv-label-studio"
    subprocess.run(["podman", "exec", HOST, "systemctl", "stop", unit], env=stack.env, check=True, timeout=120)
    try:
        found = runbooks.run(runbooks.block("service-down.md", "Which one"), stack.env)
        assert found.returncode != 0, found.stdout
        assert "label_studio" in found.stdout and "down" in found.stdout, found.stdout
        why = runbooks.run(
            runbooks.block("service-down.md", "Read why"), stack.env, inputs={"MLENV_HOST": HOST, "UNIT": unit}
        )
        assert why.returncode == 0, why.stdout + why.stderr
        assert "inactive" in why.stdout and "Stopped" in why.stdout, why.stdout
    finally:
        back = runbooks.run(runbooks.block("service-down.md", "Bring it back"), stack.env)
    assert back.returncode == 0, back.stdout[-3000:] + back.stderr[-3000:]
    assert back.stdout.count("auth OK, anonymous refused") == len(STATUS_SERVICES), back.stdout


@pytest.mark.stops_the_stack
def test_every_block_of_the_runbooks_the_tests_run_ran(stack):
    """Last of the run, after the stack was stopped and removed by the runbook's own blocks."""
    missing = [block.key for block in runbooks.run_by_the_tests() if block.key not in runbooks.ran]
    assert missing == [], f"runbook blocks no e2e test ran: {missing}"
