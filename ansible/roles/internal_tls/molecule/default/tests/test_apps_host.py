"""The application host of the TLS scenario: MLflow stores its runs in PostgreSQL and its artifacts
in the object store on the other host, over TLS that it verifies; the proxy verifies its remote
upstream; clients that do not verify, or that skip TLS, are refused."""

from __future__ import annotations

from tests.helpers.hostpython import http_status, run_python
from tests.helpers.mlflow_client import log_run_and_register
from tests.helpers.molecule import secret
from tests.helpers.training_run import VERSION, put_sample_version, train

testinfra_hosts = ["podman://mlenv-test-tls-apps"]
journal_units = ["mlenv-mlflow", "mlenv-loop", "mlenv-train@*", "nginx"]
PYTHON = "/opt/mlenv/mlflow/venv/bin/python"
CA = "/etc/mlenv/internal-ca.crt"
PROXY_CA = "/etc/mlenv-proxy/tls/ca.crt"
DATA = "mlenv-test-tls-data"

CONNECT = """
import json, os, psycopg2
try:
    psycopg2.connect(host=os.environ["HOST"], dbname="mlflow", user="mlflow", password=os.environ["PASSWORD"],
                     sslmode=os.environ["SSLMODE"], sslrootcert=os.environ.get("ROOT", ""), connect_timeout=10).close()
    print(json.dumps({"ok": True}))
except psycopg2.OperationalError as err:
    print(json.dumps({"ok": False, "error": str(err)}))
"""

LIST = """
import json, os, boto3, botocore
s3 = boto3.client("s3", endpoint_url=os.environ["ENDPOINT"], region_name="us-east-1",
                  config=botocore.config.Config(retries={"max_attempts": 1}))
try:
    print(json.dumps({"keys": [o["Key"] for o in s3.list_objects_v2(Bucket="mlflow").get("Contents", [])]}))
except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as err:
    print(json.dumps({"error": type(err).__name__, "detail": str(err)}))
"""


def connect(host, sslmode: str, *, address: str = DATA, root: str = CA) -> dict:
    env = {"HOST": address, "PASSWORD": secret("postgresql/mlflow"), "SSLMODE": sslmode, "ROOT": root}
    return run_python(host, PYTHON, CONNECT, env)


def list_bucket(host, endpoint: str, **env: str) -> dict:
    keys = {
        "AWS_ACCESS_KEY_ID": secret("object_store/mlflow.access_key"),
        "AWS_SECRET_ACCESS_KEY": secret("object_store/mlflow.secret_key"),
    }
    return run_python(host, PYTHON, LIST, {"ENDPOINT": endpoint, **keys, **env})


def data_address(host) -> str:
    return host.check_output(f"getent hosts {DATA}").split()[0]


def test_mlflow_verifies_the_database_and_the_object_store(host):
    unit = host.file("/etc/systemd/system/mlenv-mlflow.service").content_string
    assert "PGSSLMODE=verify-full" in unit
    assert f"PGSSLROOTCERT={CA}" in unit
    assert f"AWS_CA_BUNDLE={CA}" in unit
    assert f"MLFLOW_S3_ENDPOINT_URL=https://{DATA}:8333" in unit


def test_a_run_and_its_artifact_go_over_tls_to_the_other_host(host):
    answer = log_run_and_register(
        host,
        tracking_uri="http://127.0.0.1:5000",
        password=secret("mlflow/admin_password"),
        experiment="between-hosts",
        model="between-hosts-model",
    )
    assert "report.txt" in answer["artifacts"]
    keys = list_bucket(host, f"https://{DATA}:8333", AWS_CA_BUNDLE=CA)["keys"]
    assert any(key.endswith(f"{answer['run_id']}/artifacts/report.txt") for key in keys), keys


def test_the_trigger_service_and_its_runs_verify_the_database_and_the_object_store(host):
    unit = host.file("/etc/systemd/system/mlenv-loop.service").content_string
    assert "PGSSLMODE=verify-full" in unit and f"PGSSLROOTCERT={CA}" in unit and f"AWS_CA_BUNDLE={CA}" in unit
    assert f"AWS_CA_BUNDLE={CA}" in host.file("/etc/mlenv-loop/train.env").content_string


def test_a_training_run_reads_its_dataset_version_over_tls_and_registers_its_model(host):
    put_sample_version(
        host,
        endpoint=f"https://{DATA}:8333",
        access_key=secret("object_store/loop.access_key"),
        secret_key=secret("object_store/loop.secret_key"),
        ca_bundle=CA,
    )
    result = train(host, "tickets-0000000000e1")
    assert result["dataset_version"] == VERSION and result["decision"] == "production", result


def test_a_verified_connection_to_the_database_succeeds(host):
    assert connect(host, "verify-full") == {"ok": True}


def test_a_connection_without_tls_is_refused(host):
    answer = connect(host, "disable")
    assert not answer["ok"]
    assert "no encryption" in answer["error"], answer


def test_the_database_certificate_does_not_pass_for_another_name(host):
    answer = connect(host, "verify-full", address=data_address(host))
    assert not answer["ok"]
    assert "does not match host name" in answer["error"], answer


def test_the_database_certificate_is_not_trusted_without_the_internal_ca(host):
    answer = connect(host, "verify-full", root="/etc/ssl/certs/ca-certificates.crt")
    assert not answer["ok"]
    assert "certificate verify failed" in answer["error"], answer


def test_the_object_store_refuses_plain_http(host):
    answer = list_bucket(host, f"http://{DATA}:8333")
    assert "keys" not in answer, answer


def test_the_object_store_certificate_is_not_trusted_without_the_internal_ca(host):
    answer = list_bucket(host, f"https://{DATA}:8333", AWS_CA_BUNDLE="/etc/ssl/certs/ca-certificates.crt")
    assert answer["error"] == "SSLError", answer


def test_the_proxy_reaches_the_remote_object_store_by_a_verified_certificate(host):
    answer = list_bucket(host, "https://s3.mlenv.test", AWS_CA_BUNDLE=PROXY_CA)
    assert "keys" in answer, answer
    site = host.check_output("nginx -T 2>/dev/null")
    assert "proxy_ssl_verify on;" in site
    assert f"proxy_ssl_trusted_certificate {CA};" in site


def test_the_proxy_refuses_an_upstream_whose_certificate_does_not_name_it(host):
    # The same server by a name its certificate lacks: nginx's verification fails, 502.
    assert http_status(host, "https://misnamed.mlenv.test/", ca_file=PROXY_CA) == 502
