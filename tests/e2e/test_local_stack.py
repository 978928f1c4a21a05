"""The embedded default, for real: `mlenv up` on the local profile, then every service used through
the TLS proxy with the generated CA, as a team member would."""

from __future__ import annotations

import base64
import json
import re
import shlex
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import boto3
import botocore.exceptions
import pytest
from botocore.config import Config

from tests.e2e.clients import OUTSIDE, label_studio, mlflow_api, request, s3
from tests.e2e.conftest import DOMAIN, HOST, STATUS_SERVICES
from tests.helpers import runbooks
from tests.helpers.mlflow_client import log_run_and_register

# The object store's S3 API as the services on the host reach it (its own loopback address).
S3_INSIDE = "http://127.0.0.2:8333"
# How `ss` shows a listener on every address.
WILDCARDS = ("0.0.0.0", "*", "::")  # noqa: S104


def test_up_printed_the_urls_and_where_the_credentials_are(stack):
    for service in ("mlflow", "labels", "s3"):
        assert stack.url(service, "") in stack.up_output
    assert str(stack.state / "secrets") in stack.up_output
    outputs = json.loads((stack.state / "outputs.json").read_text())
    assert outputs["ca_certificate"] == stack.ca
    # One spelling per service, each with its URL and account (no secret in the file).
    assert outputs["services"]["label_studio"]["url"] == stack.url("labels", "")
    assert outputs["services"]["object_store"]["account"]["secrets"]["access_key"] == "object_store/admin.access_key"
    assert stack.secret("mlflow/admin_password") not in json.dumps(outputs)


def test_secrets_are_files_only_their_owner_reads(stack):
    files = [path for path in (stack.state / "secrets").rglob("*") if path.is_file()]
    assert len(files) >= 10
    private = [path for path in files if path.suffix not in (".crt", ".csr", ".pub")]
    assert all(path.stat().st_mode & 0o777 == 0o600 for path in private), private


@pytest.mark.parametrize(("service", "path"), [("mlflow", "/health"), ("labels", "/health/")])
def test_services_answer_through_tls_trusted_through_the_generated_ca(stack, service, path):
    assert request(stack, stack.url(service, path))[0] == 200


@pytest.mark.parametrize(
    ("service", "path"), [("mlflow", "/api/2.0/mlflow/experiments/search?max_results=1"), ("labels", "/api/projects")]
)
def test_anonymous_requests_are_refused(stack, service, path):
    assert request(stack, stack.url(service, path))[0] == 401


def test_tls_is_refused_without_the_ca(stack):
    with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
        urllib.request.urlopen(stack.url("mlflow", "/health"), timeout=30)


def test_mlflow_run_artifact_and_model_land_in_the_bucket(stack, container):
    # The real MLflow client, on the stack's host, through the proxy and its TLS (port 443 inside).
    container.run(f"grep -q mlflow.{DOMAIN} /etc/hosts || echo '127.0.0.1 mlflow.{DOMAIN}' >> /etc/hosts")
    answer = log_run_and_register(
        container,
        tracking_uri=f"https://mlflow.{DOMAIN}",
        password=stack.secret("mlflow/admin_password"),
        experiment="e2e",
        model="e2e-model",
        ca_file="/etc/mlenv-proxy/tls/ca.crt",
    )
    assert answer["params"] == {"lr": "0.01", "epochs": "3"}
    assert answer["loss"] == 0.3
    assert int(answer["version"]) >= 1
    # From this machine, through the proxy's S3 site, as the mlflow identity.
    keys = [o["Key"] for o in s3(stack, "mlflow").list_objects_v2(Bucket="mlflow").get("Contents", [])]
    assert any(key.endswith(f"{answer['run_id']}/artifacts/report.txt") for key in keys), keys


# A team member's laptop or a CI job: the real MLflow client on this machine (not the host), through
# the proxy, with the client's default settings (run by tests/helpers/outside.py, where *.mlenv.localhost
# resolves as /etc/hosts would make it).
OUTSIDE_CLIENT = """
import json, os, tempfile
import mlflow
from mlflow import MlflowClient
client = MlflowClient()
experiment = mlflow.set_experiment("e2e-outside")
with mlflow.start_run() as run:
    folder = tempfile.mkdtemp()
    open(os.path.join(folder, "weights.txt"), "w").write("outside " * 1000)
    open(os.path.join(folder, "MLmodel"), "w").write("flavors: {}\\n")
    mlflow.log_artifacts(folder, artifact_path="model")
name = "e2e-outside-" + run.info.run_id[:8]
client.create_registered_model(name)
version = client.create_model_version(name, f"runs:/{run.info.run_id}/model", run_id=run.info.run_id)
fetched = client.download_artifacts(run.info.run_id, "model/weights.txt", tempfile.mkdtemp())
model = mlflow.artifacts.download_artifacts(f"models:/{name}/{version.version}", dst_path=tempfile.mkdtemp())
print(json.dumps({"weights": open(fetched).read()[:16], "model_files": sorted(os.listdir(model))}))
"""


def test_artifacts_and_models_download_from_outside_with_default_client_settings(stack, container, tmp_path):
    """MLflow signs presigned downloads for its own S3 endpoint, which only the host reaches: the proxy says
    presigned transfers are off, so the default client downloads through MLflow (bounded: a broken setup
    would retry for about ten minutes)."""
    env = {key: value for key, value in stack.env.items() if not key.startswith("MLFLOW_")}
    env.update(MLFLOW_TRACKING_URI=stack.url("mlflow", ""), MLFLOW_TRACKING_USERNAME="admin",
               MLFLOW_TRACKING_PASSWORD=stack.secret("mlflow/admin_password"), REQUESTS_CA_BUNDLE=stack.ca,
               MLFLOW_DISABLE_TELEMETRY="true")  # fmt: skip
    script = tmp_path / "outside_client.py"
    script.write_text(OUTSIDE_CLIENT)
    result = subprocess.run(
        [sys.executable, str(OUTSIDE), str(script)], env=env, capture_output=True, text=True, timeout=180, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert found["weights"] == "outside outside "
    assert {"MLmodel", "weights.txt"} <= set(found["model_files"]), found
    pair = base64.b64encode(f"admin:{stack.secret('mlflow/admin_password')}".encode()).decode()
    status, info = request(stack, stack.url("mlflow", "/api/3.0/mlflow/server-info"),
                           headers={"Authorization": f"Basic {pair}"})  # fmt: skip
    assert status == 200, info
    assert info["multipart_downloads_enabled"] is False and info["multipart_uploads_enabled"] is False
    assert "store_type" in info  # the rest of the server's answer is passed on as it is
    # What makes the difference: the server itself, asked on its host, does advertise presigned downloads.
    probe = (
        "import sys, urllib.request\n"
        "url = 'http://127.0.0.1:5000/api/3.0/mlflow/server-info'\n"
        "request = urllib.request.Request(url, headers={'Authorization': 'Basic ' + sys.argv[1]})\n"
        "print(urllib.request.urlopen(request, timeout=10).read().decode())"
    )
    upstream = container.run(f"python3 -c {shlex.quote(probe)} {pair}")
    assert upstream.rc == 0, upstream.stderr
    assert json.loads(upstream.stdout)["multipart_downloads_enabled"] is True


def test_object_store_through_the_proxy_checks_identities(stack):
    client = s3(stack, "label-studio")
    client.put_object(Bucket="datasets", Key="e2e/v1/data.csv", Body=b"x,y\n1,2\n")
    assert client.get_object(Bucket="datasets", Key="e2e/v1/data.csv")["Body"].read() == b"x,y\n1,2\n"
    with pytest.raises(botocore.exceptions.ClientError, match="AccessDenied"):
        client.list_objects_v2(Bucket="mlflow")
    with pytest.raises(botocore.exceptions.ClientError, match="SignatureDoesNotMatch"):
        s3(stack, "label-studio", secret="x" * 40).list_objects_v2(Bucket="datasets")


def test_what_the_gitlab_layer_gets_from_this_converge_works(stack):
    """The cloud profile's hand-over, from a real converge: the CI/CD variables mlenv would give the
    GitLab program reach the services (the CI key pair writes a dataset, the MLflow login is accepted)."""
    from mlenv.config import MlenvConfig
    from mlenv.handover import gitlab_stack_config

    pool = {"name": "t4", "machine_type": "n1-standard-8", "accelerator": "nvidia-tesla-t4", "max_nodes": 1}
    cluster = {"provider": "gke", "region": "europe-west4", "project": "p", "gpu_pools": [pool]}
    config = MlenvConfig.model_validate(
        {"profile": "cloud", "cloud": {"inventory": "/x", "cluster": cluster, "gitlab": {"group_path": "team"}}}
    )
    from mlenv.outputs import read

    outputs = read(stack.state)
    handed = gitlab_stack_config(config, outputs, stack.state)
    platform = json.loads(handed["platform"].value)
    assert platform["tracking_uri"] == stack.url("mlflow", "") and platform["s3_endpoint"] == stack.url("s3", "")
    ci = boto3.client(
        "s3",
        endpoint_url=platform["s3_endpoint"],
        region_name=outputs.region,
        aws_access_key_id=handed["awsAccessKeyId"].value,
        aws_secret_access_key=handed["awsSecretAccessKey"].value,
        verify=stack.ca,
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2}),
    )
    ci.put_object(Bucket=platform["dataset_bucket"], Key="ci/v1/labels.json", Body=b"[]")
    assert ci.get_object(Bucket=platform["dataset_bucket"], Key="ci/v1/labels.json")["Body"].read() == b"[]"
    assert platform["mlflow_username"] == "mlenv-ci"
    login = base64.b64encode(f"{platform['mlflow_username']}:{handed['mlflowPassword'].value}".encode()).decode()

    def as_ci(method: str, path: str, body: object = None) -> int:
        return request(stack, stack.url("mlflow", f"/api/2.0/mlflow/{path}"), method=method, body=body,
                       headers={"Authorization": f"Basic {login}"})[0]  # fmt: skip

    assert as_ci("GET", "experiments/search?max_results=1") == 200
    # CI manages what it creates and only reads the rest: not the administrator's model, not the users.
    assert mlflow_api(stack, "registered-models/create", method="POST", body={"name": "e2e-admins"})[0] == 200
    assert as_ci("GET", "registered-models/get?name=e2e-admins") == 200
    assert as_ci("PATCH", "registered-models/update", {"name": "e2e-admins", "description": "ci was here"}) == 403
    assert as_ci("DELETE", "registered-models/delete", {"name": "e2e-admins"}) == 403
    assert as_ci("POST", "users/create", {"username": "ci-made", "password": "x" * 20}) == 403
    assert as_ci("POST", "registered-models/create", {"name": "e2e-ci-owned"}) == 200
    assert as_ci("PATCH", "registered-models/update", {"name": "e2e-ci-owned", "description": "ci was here"}) == 200
    # CI's own Label Studio account: its token works, is not the administrator's, and says who it is.
    ci_token = handed["labelStudioApiKey"].value
    assert ci_token != stack.secret("label_studio/api_token")
    status, me = request(stack, stack.url("labels", "/api/current-user/whoami"),
                         headers={"Authorization": f"Token {ci_token}"})  # fmt: skip
    assert status == 200 and me["email"] == "ci@mlenv.local", me
    assert (
        request(stack, stack.url("labels", "/api/projects/"), headers={"Authorization": f"Token {ci_token}"})[0] == 200
    )
    assert (
        request(stack, stack.url("labels", "/api/projects/"), headers={"Authorization": "Token " + "0" * 40})[0] == 401
    )


def test_label_studio_project_task_annotation_and_export_to_the_bucket(stack):
    config = (
        '<View><Text name="text" value="$text"/><Choices name="label" toName="text">'
        '<Choice value="good"/><Choice value="bad"/></Choices></View>'
    )
    status, project = label_studio(stack, "POST", "projects", {"title": "e2e", "label_config": config})
    assert status == 201, project
    status, storage = label_studio(
        stack,
        "POST",
        "storages/export/s3",
        {
            "project": project["id"],
            "bucket": "label-studio",
            "prefix": "e2e/annotations/",
            "s3_endpoint": S3_INSIDE,
            "aws_access_key_id": stack.secret("object_store/label-studio.access_key"),
            "aws_secret_access_key": stack.secret("object_store/label-studio.secret_key"),
        },
    )
    assert status == 201, storage
    assert label_studio(stack, "POST", f"projects/{project['id']}/import", [{"text": "ok"}])[0] == 201
    tasks = label_studio(stack, "GET", f"tasks?project={project['id']}")[1]["tasks"]
    result = [{"from_name": "label", "to_name": "text", "type": "choices", "value": {"choices": ["good"]}}]
    assert label_studio(stack, "POST", f"tasks/{tasks[0]['id']}/annotations", {"result": result})[0] == 201
    assert label_studio(stack, "POST", f"storages/export/s3/{storage['id']}/sync")[0] == 200
    client = s3(stack, "label-studio")
    deadline = time.monotonic() + 60
    exported: list = []
    while time.monotonic() < deadline and not exported:
        exported = client.list_objects_v2(Bucket="label-studio", Prefix="e2e/annotations/").get("Contents", [])
        time.sleep(1)
    assert exported, "the annotation did not reach the bucket"
    annotation = json.loads(client.get_object(Bucket="label-studio", Key=exported[0]["Key"])["Body"].read())
    assert annotation["result"][0]["value"]["choices"] == ["good"]


VENVS = ["/opt/mlenv/mlflow/venv", "/opt/mlenv/label-studio/venv", "/opt/mlenv/loop/venv", "/opt/mlenv/train/venv",
         "/opt/mlenv/model-server/venv", "/opt/mlenv/s3-tools"]  # fmt: skip


def test_every_service_virtualenv_was_installed_from_its_lock_with_hashes(container):
    """The record pip_venv writes after an install is what pip installed: the lock, hash-checked."""
    for venv in VENVS:
        record = container.file(f"{venv}/mlenv-requirements.txt").content_string
        assert record.startswith("# mlenv-lock-inputs-sha256: "), venv
        pinned = [line for line in record.splitlines() if "==" in line and not line.lstrip().startswith("#")]
        assert len(pinned) >= 5 and record.count("--hash=sha256:") >= len(pinned), venv
        # What is installed is what the lock pins: pip reports no broken or missing requirement.
        assert container.run(f"{venv}/bin/pip check").rc == 0, venv


def listeners(container) -> set[tuple[str, int]]:
    """(address, port) of every TCP listener in the host's network namespace."""
    found = set()
    for line in container.check_output("ss -Hltn").splitlines():
        address, port = line.split()[3].rsplit(":", 1)
        found.add((address.strip("[]"), int(port)))
    return found


def test_label_studio_is_let_through_to_exactly_s3_and_the_trigger_service(stack, container):
    """The SSRF guard's exemption is by address: on the two exempt addresses only the S3 API and the
    trigger service listen (besides the proxy and sshd on every address, which are public anyway),
    and Label Studio is refused everywhere else on the loopback network."""
    found = listeners(container)
    on = {address: {port for at, port in found if at == address} for address in ("127.0.0.2", "127.0.0.3")}
    assert on == {"127.0.0.2": {8333}, "127.0.0.3": {8095}}, found
    everywhere = {port for at, port in found if at in WILDCARDS}
    assert everywhere <= {22, 80, 443}, found
    body = {"project": None, "bucket": "label-studio", "aws_access_key_id": "x", "aws_secret_access_key": "x"}
    status, project = label_studio(stack, "POST", "projects", {"title": "ssrf"})
    assert status == 201, project
    body["project"] = project["id"]
    # MLflow, Label Studio itself, PostgreSQL, the model server and its gateway: each refused by the guard.
    for port in (5000, 8080, 5432, 8090, 8093):
        status, answer = label_studio(
            stack, "POST", "storages/s3/validate", {**body, "s3_endpoint": f"http://127.0.0.1:{port}"}
        )
        assert status == 403 and "reserved network address" in str(answer), (port, status, answer)
    status, answer = label_studio(stack, "POST", "storages/s3/validate", {**body, "s3_endpoint": S3_INSIDE})
    assert "reserved network address" not in str(answer), answer


def test_the_runbooks_up_again_changes_nothing_and_skips_the_checks_its_inputs_passed(stack):
    # `make up` (the README's command: install, then mlenv up) and `mlenv up` on the converged stack.
    again = runbooks.run(runbooks.block("local-environment.md", "Bring it up, or bring it back"), stack.env)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert again.stdout.count(", 0 changes;") == 2, again.stdout
    # The first up recorded its inputs; these had the same, so the up-front pass ended at once and
    # each role checked itself (mlenv/inputs.py).
    log = Path(re.findall(r"log: (\S+)", again.stdout)[-1]).read_text()
    assert "TASK [Skip the pass when these inputs passed it before]" in log
    assert "Check the settings the inventory gives each role" not in log
    assert "postgresql : Check the inputs" in log


def test_an_up_killed_mid_converge_was_resumed_by_the_next(stack):
    assert "✔ Databases" in stack.interrupted_output
    assert "✔ Object store" not in stack.interrupted_output
    # The resumed run found the database layer done.
    assert f"✔ local host {HOST}: already running" in stack.up_output


def test_status_is_all_green_with_auth(stack):
    result = runbooks.run(runbooks.block("local-environment.md", "Is it healthy?"), stack.env)
    assert result.returncode == 0, result.stdout
    for service in STATUS_SERVICES:
        assert f"│ {service} " in result.stdout
    assert result.stdout.count("auth OK, anonymous refused") == len(STATUS_SERVICES), result.stdout


def test_credentials_name_the_files_and_show_secrets_on_request(stack):
    hidden = stack.mlenv("credentials")
    assert hidden.returncode == 0, hidden.stdout
    password = stack.secret("mlflow/admin_password")
    assert password not in hidden.stdout
    assert str(stack.state / "secrets/mlflow/admin_password") in hidden.stdout
    assert password in stack.mlenv("credentials", "--show-secrets").stdout


def test_plan_on_the_converged_stack_finds_nothing_to_change(stack):
    result = stack.mlenv("plan")
    assert result.returncode == 0, result.stdout[-3000:]
    assert "nothing would change" in result.stdout


def test_a_second_up_is_refused_while_one_runs(stack):
    first = subprocess.Popen(["mlenv", "up"], env=stack.env, stdout=subprocess.PIPE, text=True)
    try:
        assert first.stdout is not None
        first.stdout.readline()  # it holds the lock once it prints
        second = stack.mlenv("up")
    finally:
        first.wait(timeout=600)
    assert second.returncode == 1
    assert "another `mlenv up`" in second.stdout and "wait for it to finish" in second.stdout
    assert first.returncode == 0


def test_a_renewed_ci_token_replaces_the_old_one_at_the_next_up(stack):
    """Rotation: CI's Label Studio token file removed on the controller, the next up generates a new one,
    and it is then the account's only token; the old one is refused. The account is a plain member."""
    token_file = stack.state / "secrets/label_studio/users/ci@mlenv.local.api_token"
    old = token_file.read_text().split()[0]
    token_file.unlink()
    result = stack.mlenv("up")
    assert result.returncode == 0, result.stdout[-3000:]
    new = token_file.read_text().split()[0]
    assert new != old

    def whoami(token: str) -> tuple[int, dict]:
        url = stack.url("labels", "/api/current-user/whoami")
        return request(stack, url, headers={"Authorization": f"Token {token}"})

    status, me = whoami(new)
    assert status == 200 and me["email"] == "ci@mlenv.local", me
    assert not me.get("is_superuser", False), me
    assert whoami(old)[0] == 401


@pytest.mark.parametrize(
    ("fault", "break_it"),
    [
        # Another environment's `mlenv plan` once authorized its own key over this one's.
        ("key no longer authorized", "rm /root/.ssh/authorized_keys"),
        # The host's SSH keys made anew (the pinned one no longer matches).
        ("host key changed", "rm /etc/ssh/ssh_host_* && ssh-keygen -A && systemctl restart ssh"),
    ],
)
def test_an_up_heals_the_access_to_its_host_over_podman(stack, container, fault, break_it, record_property):
    """mlenv's SSH access to the local host broken: the next up says what it repaired, in one line, and
    finishes (nothing else to change); `mlenv status` is healthy."""
    container.run_expect([0], break_it)
    started = time.monotonic()
    result = stack.mlenv("up")
    record_property(f"figure: {fault} → mlenv up done (s)", round(time.monotonic() - started, 1))
    assert result.returncode == 0, result.stdout[-3000:]
    repaired = [line for line in result.stdout.splitlines() if "was refused" in line]
    assert len(repaired) == 1 and "pinned again, over Podman" in repaired[0], result.stdout[-3000:]
    assert ", 0 changes;" in result.stdout, result.stdout[-3000:]
    assert stack.mlenv("status").returncode == 0


def test_an_up_unpauses_a_paused_host(stack, record_property):
    subprocess.run(["podman", "pause", HOST], env=stack.env, check=True, capture_output=True)
    started = time.monotonic()
    result = stack.mlenv("up")
    record_property("figure: host paused → mlenv up done (s)", round(time.monotonic() - started, 1))
    assert result.returncode == 0, result.stdout[-3000:]
    assert f"local host {HOST}: unpaused" in result.stdout and ", 0 changes;" in result.stdout, result.stdout[-3000:]
    assert stack.mlenv("status").returncode == 0


@pytest.mark.stops_the_stack
def test_down_stops_the_host_keeps_the_data_and_purge_removes_it(stack):
    # Last of the run, as the runbook says: stopped (status says so), then removed.
    result = runbooks.run(runbooks.block("local-environment.md", "Stop"), stack.env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "stopped (data kept)" in result.stdout
    assert host_state(stack) == "exited"
    status = stack.mlenv("status")
    assert status.returncode == 1
    assert "error: down: " in status.stdout
    removed = runbooks.run(runbooks.block("local-environment.md", "Remove"), stack.env, stdin=f"{HOST}\n")
    assert removed.returncode == 0, removed.stdout + removed.stderr
    assert host_state(stack) == "gone"
    assert (stack.state / "secrets/mlflow/admin_password").is_file()  # the secrets stay, as the page says


def host_state(stack) -> str:
    found = subprocess.run(
        ["podman", "container", "inspect", "--format", "{{.State.Status}}", HOST],
        env=stack.env,
        capture_output=True,
        text=True,
    )
    return found.stdout.strip() if found.returncode == 0 else "gone"
