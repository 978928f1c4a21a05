"""Day 2 on the shared stack: `mlenv rotate` while clients keep calling, then backup and restore.

Rotation renews every secret it knows while a client loop calls MLflow, S3 and the models site with
the credentials on disk at each call (what a job given the new variables does); afterwards the old
values are refused everywhere, the new ones work.

Backup and restore of the populated stack, for real: MLflow runs with artifacts and a registered
model, a dataset version, Label Studio tasks, annotations and an uploaded file, every version of
every bucket. Backed up, the host destroyed (`mlenv down --purge`), restored (which brings the host
up again), then read back through the proxy with the real clients: everything as it was, and the
services keep working. A damaged backup and the wrong key are refused first, changing nothing.

It destroys the shared host, so it runs after the tests that use it (stops_the_stack), and before
the test that stops it for good.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
from botocore.exceptions import ClientError

from mlenv import health
from mlenv.config import CI_LABEL_STUDIO_USER as CI_USER
from mlenv_loop.webhooks import SECRET_HEADER
from tests.e2e.clients import OUTSIDE, label_studio, mlflow_api, request, s3
from tests.e2e.conftest import HOST, STATUS_SERVICES, Stack
from tests.e2e.labelling import Project
from tests.e2e.test_loop_service import MODEL, wait_served
from tests.helpers import runbooks

pytestmark = pytest.mark.stops_the_stack

ADMIN_EMAIL = "admin@mlenv.local"  # the label_studio role's default
RUNBOOK = "backup-and-restore.md"

POPULATE = """
import json, os, sys, tempfile
import mlflow
from mlflow import MlflowClient
name = sys.argv[1]
mlflow.set_experiment(name)
with mlflow.start_run() as run:
    mlflow.log_params({"kept": "yes"})
    mlflow.log_metric("loss", 0.25)
    folder = tempfile.mkdtemp()
    open(os.path.join(folder, "weights.bin"), "wb").write(os.urandom(300_000))
    open(os.path.join(folder, "MLmodel"), "w").write("flavors: {}\\n")
    mlflow.log_artifacts(folder, artifact_path="model")
client = MlflowClient()
client.create_registered_model(name)
version = client.create_model_version(name, f"runs:/{run.info.run_id}/model", run_id=run.info.run_id)
client.set_registered_model_alias(name, "production", version.version)
print(json.dumps({"run_id": run.info.run_id}))
"""

# Everything MLflow holds, as its client reads it: runs (params, metrics), models, versions, aliases,
# and one artifact's content.
SNAPSHOT = """
import hashlib, json, sys, tempfile
from mlflow import MlflowClient
client = MlflowClient()
runs = {}
for experiment in client.search_experiments():
    for run in client.search_runs([experiment.experiment_id], max_results=10000):
        runs[run.info.run_id] = [experiment.name, run.info.status, run.data.params, run.data.metrics]
models = {}
for model in client.search_registered_models():
    versions = client.search_model_versions(f"name='{model.name}'")
    models[model.name] = [sorted([v.version, v.run_id, v.source] for v in versions), model.aliases]
path = client.download_artifacts(sys.argv[1], "model/weights.bin", tempfile.mkdtemp())
weights = hashlib.sha256(open(path, "rb").read()).hexdigest()
print(json.dumps({"runs": runs, "models": models, "weights": weights}, sort_keys=True))
"""


def outside(stack: Stack, script: str, *args: str, tmp_path: Path) -> dict:
    env = {key: value for key, value in stack.env.items() if not key.startswith("MLFLOW_")}
    env.update(MLFLOW_TRACKING_URI=stack.url("mlflow", ""), MLFLOW_TRACKING_USERNAME="admin",
               MLFLOW_TRACKING_PASSWORD=stack.secret("mlflow/admin_password"), REQUESTS_CA_BUNDLE=stack.ca,
               MLFLOW_DISABLE_TELEMETRY="true")  # fmt: skip
    path = tmp_path / f"script-{hashlib.sha256(script.encode()).hexdigest()[:8]}.py"
    path.write_text(script)
    result = subprocess.run(
        [sys.executable, str(OUTSIDE), str(path), *args], env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def label_studio_snapshot(stack: Stack, project: int) -> dict:
    status, projects = label_studio(stack, "GET", "projects?page_size=1000")
    assert status == 200, projects
    summary = {item["title"]: [item["task_number"], item["total_annotations_number"]] for item in projects["results"]}
    tasks = label_studio(stack, "GET", f"tasks?project={project}&page_size=1000&fields=all")[1]["tasks"]
    annotations = {task["id"]: [annotation["result"] for annotation in task["annotations"]] for task in tasks}
    token = stack.secret("label_studio/api_token")
    uploads = requests.get(
        stack.url("labels", f"/api/projects/{project}/file-uploads?all=true"),
        headers={"Authorization": f"Token {token}"},
        verify=stack.ca,
        timeout=60,
    )
    assert uploads.status_code == 200, uploads.text[:300]
    files = {}
    for upload in uploads.json():
        served = requests.get(
            stack.url("labels", f"/data/{upload['file']}"),
            headers={"Authorization": f"Token {token}"},
            verify=stack.ca,
            timeout=60,
        )
        assert served.status_code == 200, (upload, served.status_code)
        files[upload["file"]] = hashlib.sha256(served.content).hexdigest()
    return {"projects": summary, "annotations": annotations, "files": files}


def buckets_snapshot(stack: Stack) -> dict:
    """Every version of every bucket (key, current or not, deleted, content) as boto3 reads it."""
    client = s3(stack, "admin")
    found = {}
    for bucket in [item["Name"] for item in client.list_buckets()["Buckets"]]:
        entries = []
        for page in client.get_paginator("list_object_versions").paginate(Bucket=bucket):
            for version in page.get("Versions", []):
                body = client.get_object(Bucket=bucket, Key=version["Key"], VersionId=version["VersionId"])["Body"]
                digest = hashlib.sha256(body.read()).hexdigest()
                entries.append([version["Key"], version["IsLatest"], digest])
            entries += [[marker["Key"], marker["IsLatest"], "deleted"] for marker in page.get("DeleteMarkers", [])]
        found[bucket] = sorted(entries)
    return found


def snapshot(stack: Stack, project: int, run_id: str, tmp_path: Path) -> dict:
    datasets = stack.mlenv("dataset", "list", "e2e-backup", "--json")
    assert datasets.returncode == 0, datasets.stdout
    return {
        "mlflow": outside(stack, SNAPSHOT, run_id, tmp_path=tmp_path),
        "label_studio": label_studio_snapshot(stack, project),
        "buckets": buckets_snapshot(stack),
        "datasets": json.loads(datasets.stdout),
    }


def populate(stack: Stack, tmp_path: Path) -> tuple[int, str]:
    run_id = outside(stack, POPULATE, "e2e-backup", tmp_path=tmp_path)["run_id"]
    project = Project(stack, "e2e backup")
    project.label(12)
    token = stack.secret("label_studio/api_token")
    upload = requests.post(
        stack.url("labels", f"/api/projects/{project.id}/import"),
        headers={"Authorization": f"Token {token}"},
        files={"file": ("more-tasks.json", json.dumps([{"text": "uploaded, kept by the backup"}]), "application/json")},
        verify=stack.ca,
        timeout=120,
    )
    assert upload.status_code == 201, upload.text[:300]
    made = stack.mlenv("dataset", "snapshot", str(project.id), "--dataset", "e2e-backup", "--tag", "backed-up")
    assert made.returncode == 0, made.stdout + made.stderr
    client = s3(stack, "admin")
    for content in (b"first\n", b"second\n"):  # two versions in the versioned bucket
        client.put_object(Bucket="datasets", Key="e2e-backup/versioned.txt", Body=content)
    client.put_object(Bucket="datasets", Key="e2e-backup/deleted.txt", Body=b"gone\n")
    client.delete_object(Bucket="datasets", Key="e2e-backup/deleted.txt")  # a delete marker
    return project.id, run_id


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def refused_calls(stack: Stack, secrets: dict[str, str] | None = None) -> list[str]:
    """One call per kind of consumer, with `secrets` (default: what is on disk now); those refused."""

    def secret(name: str) -> str:
        return secrets[name] if secrets else stack.secret(name)

    def answer(url: str, headers: Callable[[], dict[str, str]], body: object = None) -> Callable[[], int]:
        method = "GET" if body is None else "POST"
        return lambda: request(stack, url, method=method, body=body, headers=headers())[0]

    def bearer(name: str) -> Callable[[], dict[str, str]]:
        return lambda: {"Authorization": f"Bearer {secret(name)}"}

    def token(name: str) -> Callable[[], dict[str, str]]:
        return lambda: {"Authorization": f"Token {secret(name)}"}

    refused = []
    search = stack.url("mlflow", "/api/2.0/mlflow/experiments/search?max_results=1")
    whoami = stack.url("labels", "/api/current-user/whoami")
    loop = stack.url("loop", "/")
    # name → (call, the status that means the secret was taken)
    calls = {
        "mlflow user": (answer(search, lambda: basic("mlenv-ci", secret("mlflow/users/mlenv-ci"))), 200),
        "mlflow admin": (answer(search, lambda: basic("admin", secret("mlflow/admin_password"))), 200),
        "models site": (
            answer(stack.url("models", "/v2/health/live"), lambda: basic("mlenv", secret("model_server/password"))),
            200,
        ),
        "landing page": (answer(stack.url("", "/healthz"), lambda: basic("mlenv", secret("portal/password"))), 200),
        "s3": (
            lambda: s3_status(
                stack, secret("object_store/label-studio.access_key"), secret("object_store/label-studio.secret_key")
            ),
            200,
        ),
        "label studio admin": (answer(whoami, token("label_studio/api_token")), 200),
        "label studio ci": (answer(whoami, token(f"label_studio/users/{CI_USER}.api_token")), 200),
        "label studio admin login": (lambda: label_studio_login(stack, secret("label_studio/admin_password")), 302),
        "loop api": (answer(loop + "api/projects", bearer("ml_loop/api_token")), 200),
        # An empty body is refused (400) only once the secret was taken.
        "webhook": (
            answer(loop + "webhooks/label-studio", lambda: {SECRET_HEADER: secret("ml_loop/webhook_secret")}, {}),
            400,
        ),
        "prediction log": (answer(loop + "api/predictions", bearer("ml_loop/prediction_log_token"), {}), 400),
    }
    for name, (call, taken) in calls.items():
        try:
            status = call()
        except (OSError, KeyError) as err:  # a secret set aside and not yet made, a restart
            status = type(err).__name__
        if status != taken:
            refused.append(f"{name}: {status}")
    return refused


def label_studio_login(stack: Stack, password: str) -> int:
    """Signs in to Label Studio's web page as the administrator, as a browser does; 302 when it lets in."""
    page = stack.url("labels", "/user/login/")
    with requests.Session() as session:
        form = session.get(page, verify=stack.ca, timeout=60)
        if form.status_code != 200:
            return form.status_code
        answer = session.post(
            page,
            data={"email": ADMIN_EMAIL, "password": password, "csrfmiddlewaretoken": session.cookies.get("csrftoken")},
            headers={"Referer": page},
            allow_redirects=False,
            verify=stack.ca,
            timeout=60,
        )
    return answer.status_code


def s3_status(stack: Stack, access_key: str, secret_key: str) -> int:
    client = s3(stack, "label-studio", access_key=access_key, secret=secret_key)
    try:
        client.list_objects_v2(Bucket="label-studio", MaxKeys=1)
    except ClientError as err:
        return int(err.response["ResponseMetadata"]["HTTPStatusCode"])
    return 200


def served_certificate(stack: Stack) -> bytes:
    """The proxy's certificate as a client reaching a site sees it, verified against the CA."""
    site = urlsplit(stack.url("mlflow"))
    context = ssl.create_default_context(cafile=stack.ca)
    with (
        socket.create_connection((site.hostname, site.port), timeout=30) as connection,
        context.wrap_socket(connection, server_hostname=site.hostname) as tls,
    ):
        return tls.getpeercert(binary_form=True) or b""


def database_login(stack: Stack, user: str, password: str) -> str:
    """Logs in to the user's own database on the host (the password on stdin, not argv); psql's error or ''."""
    login = 'read -r PGPASSWORD; export PGPASSWORD; psql -h 127.0.0.1 -U "$1" -d "$1" -tAc \'select 1\''
    done = subprocess.run(["podman", "exec", "-i", HOST, "sh", "-c", login, "sh", user], input=password + "\n",
                          env=stack.env, capture_output=True, text=True, timeout=60)  # fmt: skip
    return "" if done.returncode == 0 and done.stdout.strip() == "1" else done.stderr.strip() or "no answer"


def test_rotate_renews_every_secret_while_clients_keep_working(stack, record_property):
    names = ("mlflow/users/mlenv-ci", "mlflow/admin_password", "model_server/password", "postgresql/mlflow",
             "object_store/label-studio.access_key", "object_store/label-studio.secret_key",
             "label_studio/api_token", f"label_studio/users/{CI_USER}.api_token", "label_studio/admin_password",
             "ml_loop/api_token", "ml_loop/webhook_secret", "ml_loop/prediction_log_token",
             "portal/password")  # fmt: skip
    old = {name: stack.secret(name) for name in names}
    old_certificate = served_certificate(stack)
    assert refused_calls(stack) == []
    listed = runbooks.run(runbooks.block("rotate-secrets.md", "See what can be rotated"), stack.env)
    assert listed.returncode == 0, listed.stdout + listed.stderr
    assert all(name in listed.stdout for name in names) and old["mlflow/admin_password"] not in listed.stdout
    refusals: list[tuple[float, list[str]]] = []
    done = threading.Event()

    def clients() -> None:
        while not done.is_set():
            found = refused_calls(stack)
            if found:
                refusals.append((time.monotonic(), found))
            done.wait(0.5)

    caller = threading.Thread(target=clients, daemon=True)
    started = time.monotonic()
    caller.start()
    rotated = runbooks.run(runbooks.block("rotate-secrets.md", "Rotate"), stack.env)
    ended = time.monotonic()
    done.set()
    caller.join(timeout=120)
    assert rotated.returncode == 0, rotated.stdout[-4000:] + rotated.stderr[-2000:]
    assert "every service answers with the new values" in rotated.stdout
    assert not list((stack.state / "secrets").rglob("*.previous"))

    new = {name: stack.secret(name) for name in names}
    assert all(new[name] != old[name] for name in names), [name for name in names if new[name] == old[name]]
    assert refused_calls(stack) == [], "the new values do not work"
    assert sorted(refused_calls(stack, old)) == sorted(
        ["mlflow user: 401", "mlflow admin: 401", "models site: 401", "landing page: 401", "s3: 403",
         "label studio admin: 401",
         "label studio ci: 401", "label studio admin login: 200", "loop api: 401", "webhook: 401",
         "prediction log: 401"]  # the login page again, for a wrong password
    )  # fmt: skip
    # A new key and certificate from the same CA (every call above verified it against the CA file).
    assert served_certificate(stack) != old_certificate
    assert ssl.DER_cert_to_PEM_cert(served_certificate(stack)).strip() == (
        (stack.state / "secrets/ca/server.crt").read_text().strip()
    )
    # What Label Studio sends to the trigger service: its webhooks carry the new secret.
    status, answer = request(stack, stack.url("loop", "/api/projects"), headers={
        "Authorization": f"Bearer {new['ml_loop/api_token']}"})  # fmt: skip
    hooks = [project["webhook_id"] for project in answer["projects"] if project["webhook_id"]]
    assert status == 200 and hooks, answer
    for hook in hooks:
        found = label_studio(stack, "GET", f"webhooks/{hook}/")[1]
        assert found["headers"] == {SECRET_HEADER: new["ml_loop/webhook_secret"]}, hook
    assert "password authentication failed" in database_login(stack, "mlflow", old["postgresql/mlflow"])
    assert database_login(stack, "mlflow", new["postgresql/mlflow"]) == ""
    # Refused only while the rotation ran.
    assert all(started <= moment <= ended for moment, _ in refusals)
    windows: dict[str, list[float]] = {}
    for moment, found in refusals:
        for kind in found:
            windows.setdefault(kind.split(":")[0], []).append(moment)
    record_property(
        "figure: mlenv rotate (s; per consumer: calls refused meanwhile, first to last refusal s)",
        (round(ended - started), {kind: (len(at), round(at[-1] - at[0], 1)) for kind, at in windows.items()}),
    )


def test_backup_host_loss_and_restore_bring_every_record_back(stack, tmp_path, record_property):
    backups, key = tmp_path / "backups", tmp_path / "keys" / "e2e.agekey"
    project, run_id = populate(stack, tmp_path)
    before = snapshot(stack, project, run_id, tmp_path)
    assert before["mlflow"]["models"]["e2e-backup"][1] == {"production": "1"}
    assert len(before["label_studio"]["files"]) == 1
    assert ["e2e-backup/deleted.txt", True, "deleted"] in before["buckets"]["datasets"]

    # The runbook's blocks, with the backups' folder and key where the test keeps them.
    where = {"MLENV_BACKUP_DIR": str(backups), "MLENV_BACKUP_KEY": str(key)}
    started = time.monotonic()
    made = runbooks.run(runbooks.block(RUNBOOK, "Back up"), stack.env, inputs=where)
    backup_s = time.monotonic() - started  # with the listing and the check: seconds
    assert made.returncode == 0, made.stdout[-3000:] + made.stderr[-2000:]
    assert "parts whole; each decrypts to what was backed up" in made.stdout
    (folder,) = [path for path in backups.iterdir() if not path.name.startswith(".")]
    assert folder.name in made.stdout  # listed
    manifest = json.loads((folder / "manifest.json").read_text())
    parts = {part["name"]: part for part in manifest["parts"]}
    assert {"postgresql/mlflow", "postgresql/mlflow_auth", "postgresql/labelstudio", "postgresql/mlenv_loop",
            "label_studio/media", "secrets", "objects/datasets", "objects/mlflow"} <= set(parts)  # fmt: skip
    assert parts["objects/datasets"]["counts"]["delete_markers"] >= 1
    assert parts["label_studio/media"]["counts"]["files"] >= 1
    secret = stack.secret("mlflow/admin_password").encode()
    for path in folder.rglob("*"):  # encrypted at rest: no secret, no plaintext dump
        assert path.is_dir() or secret not in path.read_bytes(), path

    # Kept on another S3 endpoint (here the stack's own S3 site, in a bucket it does not back up).
    s3(stack, "admin").create_bucket(Bucket="e2e-backups")
    remote = {"AWS_ENDPOINT_URL": stack.url("s3", ""), "AWS_CA_BUNDLE": stack.ca, "BACKUPS_URL": "s3://e2e-backups/team",
              "AWS_ACCESS_KEY_ID": stack.secret("object_store/admin.access_key"),
              "AWS_SECRET_ACCESS_KEY": stack.secret("object_store/admin.secret_key"), **where}  # fmt: skip
    done = runbooks.run(runbooks.block(RUNBOOK, "Back up to another S3 endpoint"), stack.env, inputs=remote)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "parts whole; each decrypts to what was backed up" in done.stdout
    uploaded = [item["Key"] for item in s3(stack, "admin").list_objects_v2(Bucket="e2e-backups")["Contents"]]
    assert any(name.endswith("/manifest.json") for name in uploaded) and len(uploaded) == len(parts) + 1, uploaded

    # Refused before anything changes: the wrong key, a damaged copy.
    other = tmp_path / "keys" / "other.agekey"
    subprocess.run(["age-keygen", "-o", str(other)], capture_output=True, check=True)
    wrong = stack.mlenv("restore", folder.name, "--to", str(backups), "--key", str(other), "--yes")
    assert wrong.returncode == 1 and "is not the key" in wrong.stdout, wrong.stdout
    damaged = backups / "damaged" / folder.name
    shutil.copytree(folder, damaged)
    sealed = damaged / parts["postgresql/mlflow"]["file"]
    sealed.write_bytes(sealed.read_bytes()[:-100])
    refused = stack.mlenv("restore", str(damaged), "--key", str(key), "--yes")
    assert refused.returncode == 1 and "damaged or partial; nothing was changed" in refused.stdout, refused.stdout
    assert outside(stack, SNAPSHOT, run_id, tmp_path=tmp_path) == before["mlflow"]

    started = time.monotonic()
    lost = runbooks.run(runbooks.block(RUNBOOK, "After losing the host"), stack.env, inputs=where, stdin=f"{HOST}\n")
    restore_s = time.monotonic() - started  # the purge (seconds), the restore, the status
    assert lost.returncode == 0, lost.stdout[-4000:] + lost.stderr[-2000:]
    assert "removed" in lost.stdout, lost.stdout[:2000]
    assert "every count as backed up" in lost.stdout
    assert lost.stdout.count("auth OK, anonymous refused") == len(STATUS_SERVICES), lost.stdout[-3000:]
    served = mlflow_api(stack, f"registered-models/alias?name={MODEL}&alias=production")
    if served[0] == 200:  # the loop's model, when its tests ran first: served again, answering while it loads
        slowest: list[float] = []
        wait_served(stack, served[1]["model_version"]["version"], slowest=slowest)
        assert slowest[0] < health.TIMEOUT_S, f"the model server stopped answering for {slowest[0]:.1f} s"

    after = snapshot(stack, project, run_id, tmp_path)
    for part in ("mlflow", "label_studio", "datasets", "buckets"):
        assert after[part] == before[part], part
    # The restored services keep working: a new run, a new annotation.
    assert outside(stack, POPULATE, "e2e-after-restore", tmp_path=tmp_path)["run_id"]
    status, _ = label_studio(stack, "POST", f"projects/{project}/import", [{"text": "after the restore"}])
    assert status == 201
    # By hand, without mlenv: the playbooks' round trip on the restored host, every count as dumped.
    dumps = tmp_path / "dumps"
    by_hand = runbooks.run(runbooks.block(RUNBOOK, "Without mlenv"), stack.env, inputs={"DUMPS": str(dumps)})
    assert by_hand.returncode == 0, by_hand.stdout[-4000:] + by_hand.stderr[-2000:]
    dumped = sorted(dumps.rglob("*.counts.json"))
    assert len(dumped) >= 5, dumped  # four databases and the media
    for counts in dumped:
        restored = counts.with_name(counts.name.replace(".counts.json", ".restored.json"))
        assert json.loads(restored.read_text()) == json.loads(counts.read_text()), restored
    rows = sum(sum(part["counts"].values()) for name, part in parts.items() if name.startswith("postgresql/"))
    size = sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())
    record_property("figure: backup (s, MB, database rows)", (round(backup_s), round(size / 1e6, 1), rows))
    record_property("figure: host purged, then restored (s)", round(restore_s))
