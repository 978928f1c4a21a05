"""Every role's molecule scenarios, run for real on podman systemd test hosts.

Each scenario destroys leftovers, creates its hosts, converges, converges again
expecting no change (idempotence), runs its testinfra checks and destroys.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
import yaml

from mlenv.hostimage import ensure_image
from tests.conftest import PROJECT_ROOT, ROLES_DIR, converged_roles

LOG_DIR = PROJECT_ROOT / ".cache/molecule-logs"
SCENARIO_TIMEOUT_S = 40 * 60


def scenarios() -> list[Path]:
    return sorted(path.parent for path in ROLES_DIR.glob("*/molecule/*/molecule.yml"))


def scenario_id(scenario: Path) -> str:
    return f"{scenario.parent.parent.name}:{scenario.name}"


@pytest.fixture(scope="session")
def host_image(tool_env) -> str:
    return ensure_image(PROJECT_ROOT)


def galaxy_info(role: Path) -> dict:
    return yaml.safe_load((role / "meta/main.yml").read_text())["galaxy_info"]


def is_internal_helper(role: Path) -> bool:
    """Helpers are exercised through the roles that use them."""
    return galaxy_info(role)["description"].startswith("Internal helper")


def is_kubernetes_role(role: Path) -> bool:
    """Roles that talk to a cluster: no podman host can stand in for one, so tests/k8s renders and validates
    their manifests offline (and converges them for real where a KUBECONFIG is given)."""
    return "kubernetes" in galaxy_info(role).get("galaxy_tags", [])


def test_every_role_has_a_scenario():
    """Every role is converged and verified by a scenario: its own, or the one of the role it stands
    on (the trigger service and the model server share the mlflow scenario's host)."""
    roles_with_scenarios = {name for scenario in scenarios() for name in converged_roles(scenario)}
    assert {"ml_loop", "model_server"} <= converged_roles(ROLES_DIR / "mlflow/molecule/default")
    roles = {path.name for path in ROLES_DIR.iterdir() if (path / "tasks/main.yml").is_file()}
    helpers = {name for name in roles if is_internal_helper(ROLES_DIR / name)}
    kubernetes = {name for name in roles - helpers if is_kubernetes_role(ROLES_DIR / name)}
    assert helpers == {
        "pip_venv", "systemd_service", "k8s_reachable", "apt_packages", "internal_tls", "service_release"
    }  # fmt: skip
    assert kubernetes == {"argo_workflows", "kserve", "cluster_metrics"}
    # package_sources runs in every site.yml converge (the e2e stack's, without a bundle); with one, the offline
    # test converges the whole platform through it onto a host that reaches only the bundle.
    assert (PROJECT_ROOT / "tests/offline/test_offline_bundle.py").is_file()
    assert roles - helpers - kubernetes - roles_with_scenarios == {"package_sources"}
    for name in kubernetes:
        assert (PROJECT_ROOT / f"tests/k8s/test_{name}_manifests.py").is_file(), f"{name} has no offline tests"


@pytest.mark.scenario
@pytest.mark.parametrize("scenario", scenarios(), ids=scenario_id)
def test_scenario(scenario: Path, host_image: str, tool_env: dict[str, str]):
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    log = LOG_DIR / f"{scenario_id(scenario).replace(':', '-')}.log"
    # Molecule writes its own ansible.cfg for each scenario.
    env = {key: value for key, value in tool_env.items() if key != "ANSIBLE_CONFIG"}
    env["MLENV_HOST_IMAGE"] = host_image
    started = time.monotonic()
    with log.open("w") as out:
        result = subprocess.run(
            ["molecule", "test", "--scenario-name", scenario.name],
            cwd=scenario.parent.parent,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=SCENARIO_TIMEOUT_S,
            check=False,
        )
    elapsed = time.monotonic() - started
    tail = "\n".join(log.read_text().splitlines()[-80:])
    assert result.returncode == 0, f"molecule test failed after {elapsed:.0f}s (full log: {log}):\n{tail}"
