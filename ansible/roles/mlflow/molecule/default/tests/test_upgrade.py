"""The upgrade from the release before (requirements/upgrade-from.yml): the scenario's prepare converged it,
wrote data to it through the MLflow client and saw an upgrade whose migration failed rolled back; the
converge upgraded it to the current pins."""

from __future__ import annotations

from tests.helpers.molecule import podman_hosts, secret
from tests.helpers.upgrade import check_dumps, check_releases, read_back, versions

testinfra_hosts = podman_hosts()
journal_units = ["mlenv-mlflow"]
PREVIOUS, CURRENT = versions("mlflow", "mlflow_version")


def test_the_current_release_serves_what_was_written_before_the_upgrade(host):
    env = {
        "MLFLOW_TRACKING_URI": "http://127.0.0.1:5000",
        "MLFLOW_TRACKING_USERNAME": "admin",
        "MLFLOW_TRACKING_PASSWORD": secret("mlflow/admin_password"),
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "GIT_PYTHON_REFRESH": "quiet",
    }
    answer = read_back(host, "/opt/mlenv/mlflow/venv", env)
    assert answer["server"] == CURRENT
    assert answer["found"] == answer["written"]
    assert answer["found"]["artifact"] == "written before the upgrade"
    assert answer["found"]["loss_history"] == [0.9, 0.5, 0.3]


def test_the_release_before_stays_beside_the_current_one(host):
    check_releases(host, "/opt/mlenv/mlflow", PREVIOUS, CURRENT)


def test_both_databases_were_dumped_before_the_upgrade(host):
    check_dumps(host, "mlenv-mlflow", PREVIOUS, CURRENT, {"mlflow": "runs", "mlflow_auth": "users"})
