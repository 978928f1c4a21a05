"""The inventories parse, and the boilerplate play stops a port clash before any host is touched."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.conftest import PROJECT_ROOT


@pytest.mark.parametrize("inventory", ["local", "sample"])
def test_inventory_lists_a_host_in_every_service_group(inventory, tool_env):
    result = subprocess.run(
        ["ansible-inventory", "-i", str(PROJECT_ROOT / f"inventories/{inventory}/hosts.yml"), "--list"],
        env=tool_env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    groups = json.loads(result.stdout)
    for group in ("db_hosts", "object_store_hosts", "mlflow_hosts", "label_studio_hosts", "proxy_hosts"):
        assert groups[group]["hosts"], f"{inventory}: {group} is empty"


def boilerplate(tool_env, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ansible-playbook", "-i", str(PROJECT_ROOT / "inventories/local/hosts.yml"), "--check", *extra,
         "-e", "ansible_python_interpreter={{ ansible_playbook_python }}",
         str(PROJECT_ROOT / "ansible/playbooks/boilerplate.yml")],
        env=tool_env, capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip


def test_the_local_inventory_passes_the_boilerplate_checks(tool_env):
    result = boilerplate(tool_env)
    assert result.returncode == 0, result.stdout[-2000:]


def test_a_port_clash_between_two_services_stops_the_run(tool_env):
    result = boilerplate(tool_env, "-e", "mlflow_port=8080")
    assert result.returncode != 0
    message = " ".join(result.stdout.split())
    assert "Port clash: mlenv-local: label_studio_port and mlflow_port are both 8080" in message, result.stdout[-2000:]
    assert "changed=0" in result.stdout
