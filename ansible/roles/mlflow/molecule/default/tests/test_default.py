"""The mlflow role on a real systemd host, with PostgreSQL and the object store, used through its API."""

from __future__ import annotations

import time

from tests.helpers.hostpython import http_request, http_status, run_python
from tests.helpers.mlflow_client import log_run_and_register
from tests.helpers.molecule import podman_hosts, secret

testinfra_hosts = podman_hosts()
journal_units = ["mlenv-mlflow", "mlenv-mlflow-metrics"]
SERVICE = "mlenv-mlflow"
TOOLS_PYTHON = "/opt/mlenv/s3-tools/bin/python"
API = "http://127.0.0.1:5000/api/2.0/mlflow/experiments/search?max_results=1"


def admin() -> str:
    return f"admin:{secret('mlflow/admin_password')}"


LIST_BUCKET = """
import json, os, boto3
s3 = boto3.client("s3", endpoint_url="http://127.0.0.1:8333", region_name="us-east-1")
print(json.dumps([o["Key"] for o in s3.list_objects_v2(Bucket="mlflow").get("Contents", [])]))
"""


def test_service_runs_as_its_own_user(host):
    service = host.service(SERVICE)
    assert service.is_running and service.is_enabled
    assert host.check_output(f"ps -o user= -p $(systemctl show -p MainPID --value {SERVICE})") == "mlflow"


def test_listens_on_loopback_only(host):
    assert host.socket("tcp://127.0.0.1:5000").is_listening
    assert not host.socket("tcp://0.0.0.0:5000").is_listening


def test_anonymous_request_is_refused(host):
    assert http_status(host, API) == 401


def test_wrong_password_is_refused(host):
    assert http_status(host, API, basic_auth="admin:not-the-password") == 401


def test_unknown_host_header_is_refused(host):
    assert http_status(host, API, basic_auth=admin(), headers={"Host": "evil.example.com"}) == 403


def test_proxy_host_name_is_allowed(host):
    assert http_status(host, API, basic_auth=admin(), headers={"Host": "mlflow.mlenv.test:8443"}) == 200


def test_a_client_user_logs_in_with_its_generated_password_and_sees_only_itself(host):
    ci = f"mlenv-ci:{secret('mlflow/users/mlenv-ci')}"
    users = "http://127.0.0.1:5000/api/2.0/mlflow/users/get?username="
    assert http_status(host, API, basic_auth=ci) == 200
    assert http_status(host, users + "mlenv-ci", basic_auth=ci) == 200
    assert http_status(host, users + "admin", basic_auth=ci) == 403
    assert http_status(host, users + "mlenv-ci", basic_auth="mlenv-ci:not-the-password") == 401


def test_run_with_artifact_and_registered_model_land_in_the_bucket(host):
    answer = log_run_and_register(
        host,
        tracking_uri="http://127.0.0.1:5000",
        password=secret("mlflow/admin_password"),
        experiment="molecule",
        model="molecule-model",
    )
    assert answer["params"] == {"lr": "0.01", "epochs": "3"}
    assert answer["loss"] == 0.3
    assert "report.txt" in answer["artifacts"]
    assert int(answer["version"]) >= 1
    keys = run_python(
        host,
        TOOLS_PYTHON,
        LIST_BUCKET,
        {
            "AWS_ACCESS_KEY_ID": secret("object_store/mlflow.access_key"),
            "AWS_SECRET_ACCESS_KEY": secret("object_store/mlflow.secret_key"),
        },
    )
    assert any(key.endswith(f"{answer['run_id']}/artifacts/report.txt") for key in keys), keys


def test_the_workers_metrics_are_served_on_loopback_without_auth_and_mlflows_own_are_for_admins(host):
    assert host.service("mlenv-mlflow-metrics").is_running
    assert not host.socket("tcp://0.0.0.0:5001").is_listening
    http_status(host, API, basic_auth=admin())
    answer = http_request(host, "http://127.0.0.1:5001/metrics")
    assert answer["status"] == 200
    assert 'mlflow_http_request_total{method="GET",status="200"}' in answer["body"], answer["body"][:2000]
    assert http_status(host, "http://127.0.0.1:5000/metrics") == 401
    assert http_status(host, "http://127.0.0.1:5000/metrics", basic_auth=admin()) == 200


def test_secrets_are_private(host):
    env = host.file("/etc/mlenv-mlflow/mlflow.env")
    assert (env.user, env.mode) == ("root", 0o600)
    ini = host.file("/etc/mlenv-mlflow/basic_auth.ini")
    assert (ini.user, ini.mode) == ("mlflow", 0o600)
    assert "password" not in host.file(f"/etc/systemd/system/{SERVICE}.service").content_string.lower()
    assert host.file("/var/lib/mlenv-mlflow").mode == 0o700


def test_job_execution_and_telemetry_are_off(host):
    unit = host.file(f"/etc/systemd/system/{SERVICE}.service").content_string
    assert "MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false" in unit
    assert "MLFLOW_DISABLE_TELEMETRY=true" in unit


def test_restarts_by_itself_after_kill_9(host):
    before = host.check_output(f"systemctl show -p MainPID --value {SERVICE}")
    host.run(f"systemctl kill --signal=KILL {SERVICE}")
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if http_status(host, API, basic_auth=admin()) == 200:
            break
        time.sleep(2)
    assert host.check_output(f"systemctl show -p MainPID --value {SERVICE}") not in (before, "0")
    assert http_status(host, API, basic_auth=admin()) == 200
