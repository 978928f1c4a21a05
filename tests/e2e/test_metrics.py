"""Metrics of the local stack for real: Prometheus (Debian's) on the host scrapes every exporter and
service endpoint, each gives the series the rules and the landing page read, the rules behave as
promtool's tests of them say, and a stopped service fires ServiceDown, which the landing page lists,
then clears once it runs again."""

from __future__ import annotations

import subprocess
from datetime import UTC
from pathlib import Path

from cryptography import x509
from selenium.webdriver.common.by import By

from tests.e2e.conftest import HOST, Stack
from tests.e2e.landing_page import open_home
from tests.helpers import prometheus
from tests.helpers.manifests import documents
from tests.helpers.prometheus import query, wait_until
from tests.k8s.render import run_role

JOBS = {"prometheus", "node", "nginx", "postgresql", "mlflow", "model_server", "ml_loop"}
# A unit nothing else in the suite needs at that moment: the model server's follower.
STOPPED_UNIT = "mlenv-model-follow"


def test_every_target_is_scraped_and_up(container, record_property) -> None:
    def all_up():
        targets = prometheus.api(container, "targets?state=active")["activeTargets"]
        health = {target["labels"]["job"]: target["health"] for target in targets}
        return health if set(health) == JOBS and set(health.values()) == {"up"} else None

    health, waited = wait_until(all_up, 90)
    assert health, prometheus.api(container, "targets?state=active")["activeTargets"]
    record_property("figure: every target up after (s)", waited)


def test_each_exporter_gives_the_series_the_rules_read(stack: Stack, container) -> None:
    # The tests before may have just killed PostgreSQL: the exporter's next scrape connects again.
    database, _ = wait_until(lambda: [one["value"] for one in query(container, "pg_up")] == [1.0], 60)
    assert database, query(container, "pg_up")
    assert query(container, "nginx_connections_active"), "no nginx counts"
    units = {one["labels"]["name"]: one["value"] for one in query(container, 'node_systemd_unit_state{state="active"}')}
    assert {"nginx.service", "mlenv-mlflow.service", "mlenv-portal.service", "postgresql@15-main.service"} <= set(units)
    assert set(units.values()) == {1.0}, units
    # The certificate's expiry is the served certificate's.
    served = x509.load_pem_x509_certificate((stack.state / "secrets/ca/server.crt").read_bytes())
    (expiry,) = query(container, 'mlenv_tls_certificate_not_after_timestamp_seconds{certificate="proxy"}')
    assert expiry["value"] == served.not_valid_after_utc.replace(tzinfo=UTC).timestamp()
    # The services' own: MLflow's requests (as its metrics user), the model server's (MLServer) and the
    # loop's, per project and state.
    assert query(container, 'sum(mlflow_http_request_total{job="mlflow"})')[0]["value"] > 0
    assert len(query(container, '{job="model_server"}')) > 5
    states = {one["labels"]["state"] for one in query(container, "mlenv_loop_runs")}
    assert states == {"queued", "running", "succeeded", "failed"}, states


def test_the_alert_rules_pass_their_promtool_tests(container) -> None:
    """Each rule fires on what it watches and not beside it (tests/e2e/files/alert-rules-test.yml)."""
    source = Path(__file__).parent / "files/alert-rules-test.yml"
    subprocess.run(["podman", "cp", str(source), f"{HOST}:/tmp/alert-rules-test.yml"], check=True)
    result = container.run("promtool test rules /tmp/alert-rules-test.yml")
    assert result.rc == 0, f"{source.name}: {result.stdout}{result.stderr}"
    assert "SUCCESS" in result.stdout + result.stderr


def test_the_clusters_gpu_rules_pass_their_promtool_tests(container, tmp_path: Path, tool_env: dict[str, str]) -> None:
    """The cluster_metrics role's rules, as it renders them, against tests/e2e/files/cluster-rules-test.yml (the
    GPU alerts fire on what they watch); promtool is the host's, the same Prometheus release."""
    result = run_role("cluster_metrics", tmp_path, tool_env, cluster_metrics_apply=False,
                      cluster_metrics_manifest_dir=str(tmp_path / "out"))  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:]
    (config,) = [d for _, d in documents(tmp_path / "out") if d["kind"] == "ConfigMap"]
    rules = tmp_path / "cluster.rules.yml"
    rules.write_text(config["data"]["mlenv.rules.yml"])
    on_host = "/tmp/cluster-rules"
    container.run_expect([0], f"mkdir -p {on_host}")
    for source in (rules, Path(__file__).parent / "files/cluster-rules-test.yml"):
        subprocess.run(["podman", "cp", str(source), f"{HOST}:{on_host}/{source.name}"], check=True)
    checked = container.run(f"cd {on_host} && promtool test rules cluster-rules-test.yml")
    assert checked.rc == 0 and "SUCCESS" in checked.stdout + checked.stderr, checked.stdout + checked.stderr


def test_a_stopped_service_fires_service_down_shown_on_the_page_until_it_runs_again(
    stack: Stack, container, driver, record_property
) -> None:
    unit = f"{STOPPED_UNIT}.service"

    def down_alert():
        return [alert for alert in prometheus.firing(container, "ServiceDown") if alert["name"] == unit]

    assert down_alert() == []
    container.run_expect([0], f"systemctl stop {STOPPED_UNIT}")
    try:
        fired, waited = wait_until(down_alert, 150)
        record_property("figure: unit stopped → ServiceDown firing (s)", waited)
        assert fired, prometheus.api(container, "alerts")
        assert fired[0]["severity"] == "critical"
        open_home(driver, stack, "landing-page-alert.png")
        alerts = driver.find_element(By.ID, "alerts")
        assert f"{unit} is not running" in alerts.text, alerts.text
    finally:
        container.run_expect([0], f"systemctl start {STOPPED_UNIT}")
    cleared, waited = wait_until(lambda: down_alert() == [], 90)
    record_property("figure: unit started → ServiceDown cleared (s)", waited)
    assert cleared
