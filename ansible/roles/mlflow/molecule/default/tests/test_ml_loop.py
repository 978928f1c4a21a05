"""The ml_loop role, on the mlflow scenario's host (PostgreSQL, the object store, MLflow): the
service answers and refuses what it must, its runs' unit is sandboxed and limited, polkit lets
the service start that unit's instances and no other unit, and a run trains for real on a
dataset version in the bucket and registers its model as the runs' own MLflow user."""

from __future__ import annotations

import json
import shlex

from tests.helpers.molecule import podman_hosts, secret
from tests.helpers.training_run import put_sample_version, train

testinfra_hosts = podman_hosts()
journal_units = ["mlenv-loop", "mlenv-train@*"]
SERVICE = "mlenv-loop"
URL = "http://127.0.0.1:8095"
HEADER = "X-Mlenv-Webhook-Secret"
RUN_ID = "tickets-0123456789ab"


def curl(host, path: str, *args: str) -> tuple[int, str]:
    """Status and body of a request from inside the host (curl is not in the image: Python is)."""
    source = (
        "import sys, urllib.request, urllib.error, json\n"
        "args = json.loads(sys.argv[1])\n"
        "request = urllib.request.Request(args['url'], data=args['data'].encode() if args['data'] else None, "
        "headers=args['headers'], method=args['method'])\n"
        "try:\n"
        "    with urllib.request.urlopen(request, timeout=10) as answer:\n"
        "        print(answer.status); print(answer.read().decode())\n"
        "except urllib.error.HTTPError as err: print(err.code); print(err.read().decode())\n"
    )
    options = dict(zip(args[::2], args[1::2], strict=True))
    request = {"url": URL + path, "data": options.get("data", ""), "method": options.get("method", "GET"),
               "headers": json.loads(options.get("headers", "{}"))}  # fmt: skip
    out = host.check_output(f"python3 -c {shlex.quote(source)} {shlex.quote(json.dumps(request))}")
    status, _, body = out.partition("\n")
    return int(status), body


def webhook(host, body: str, secret_value: str | None) -> tuple[int, str]:
    headers = {"Content-Type": "application/json", **({HEADER: secret_value} if secret_value is not None else {})}
    return curl(host, "/webhooks/label-studio", "method", "POST", "data", body, "headers", json.dumps(headers))


def psql(host, query: str) -> str:
    return host.check_output(f"runuser -u postgres -- psql -d mlenv_loop -Atc {shlex.quote(query)}")


def test_service_runs_as_its_own_user_on_loopback(host):
    service = host.service(SERVICE)
    assert service.is_running and service.is_enabled
    assert host.check_output(f"ps -o user= -p $(systemctl show -p MainPID --value {SERVICE})") == "mlenv-loop"
    assert host.socket("tcp://127.0.0.1:8095").is_listening
    assert not host.socket("tcp://0.0.0.0:8095").is_listening
    assert curl(host, "/health")[0] == 200


def test_secrets_are_root_only_files(host):
    for name in ("loop.env", "train.env"):
        found = host.file(f"/etc/mlenv-loop/{name}")
        assert (found.user, found.group, found.mode) == ("root", "root", 0o600)
    assert "SECRET" not in host.file("/etc/mlenv-loop/loop.json").content_string


def test_webhooks_are_checked_before_anything_is_stored(host):
    good = secret("ml_loop/webhook_secret")
    event = json.dumps({"action": "ANNOTATION_CREATED", "project": {"id": 1}, "annotation": {"id": 5}})
    assert webhook(host, event, None)[0] == 401
    assert webhook(host, event, "wrong")[0] == 401
    status, body = webhook(host, "{not json", good)
    assert status == 400 and "not JSON" in body
    # No Label Studio here: no project is connected, so a well-formed event is for an unknown project.
    status, body = webhook(host, event, good)
    assert status == 404 and "not one this service trains from" in body
    assert psql(host, "SELECT count(*) FROM mlenv_loop_events") == "0"


def test_the_run_listing_needs_the_api_token(host):
    assert curl(host, "/api/runs")[0] == 401
    headers = json.dumps({"Authorization": f"Bearer {secret('ml_loop/api_token')}"})
    status, body = curl(host, "/api/runs", "headers", headers)
    assert status == 200 and json.loads(body) == {"runs": []}


def test_the_runs_unit_is_sandboxed_and_limited(host):
    shown = host.check_output(
        "systemctl show mlenv-train@probe-000000000000.service -p User,ProtectSystem,NoNewPrivileges,"
        "MemoryMax,CPUQuotaPerSecUSec,RemainAfterExit,Type,PrivateTmp,CapabilityBoundingSet"
    )
    found = dict(line.split("=", 1) for line in shown.splitlines())
    assert found["User"] == "mlenv-train" and found["Type"] == "oneshot" and found["RemainAfterExit"] == "yes"
    assert found["ProtectSystem"] == "strict" and found["NoNewPrivileges"] == "yes" and found["PrivateTmp"] == "yes"
    assert found["MemoryMax"] == str(2 * 1024**3) and found["CPUQuotaPerSecUSec"] == "1.500000s"
    assert found["CapabilityBoundingSet"] == ""


def test_polkit_lets_the_service_start_its_runs_and_nothing_else(host):
    as_service = "runuser -u mlenv-loop -- systemctl --no-ask-password"
    refused = host.run(f"{as_service} restart mlenv-mlflow")
    assert refused.rc != 0 and ("denied" in refused.stderr or "authentication required" in refused.stderr)
    assert host.run(f"{as_service} start postgresql").rc != 0
    assert host.run(f"{as_service} stop mlenv-loop").rc != 0
    # A run's instance is allowed; without its parameters file the launcher refuses, so it fails at once.
    allowed = host.run(f"{as_service} start mlenv-train@nothing-000000000000.service")
    assert allowed.rc != 0 and "denied" not in allowed.stderr and "authentication" not in allowed.stderr
    assert host.service("mlenv-train@nothing-000000000000").systemd_properties["ActiveState"] == "failed"


def test_a_run_trains_on_a_dataset_version_and_registers_as_its_own_user(host):
    put_sample_version(
        host,
        endpoint="http://127.0.0.1:8333",
        access_key=secret("object_store/loop.access_key"),
        secret_key=secret("object_store/loop.secret_key"),
    )
    result = train(host, RUN_ID)
    assert result["decision"] == "production" and result["dataset_version"] == "0123456789abcdef"
    assert result["score"] > 0.6
    version = json.loads(
        curl_mlflow(host, f"/api/2.0/mlflow/model-versions/get?name=tickets&version={result['version']}")
    )
    assert {"key": "mlenv.job", "value": RUN_ID} in version["model_version"]["tags"]
    run = json.loads(curl_mlflow(host, f"/api/2.0/mlflow/runs/get?run_id={result['run_id']}"))
    assert run["run"]["info"]["user_id"] == "mlenv-train"


def curl_mlflow(host, path: str) -> str:
    source = (
        "import base64, sys, urllib.request\n"
        "request = urllib.request.Request('http://127.0.0.1:5000' + sys.argv[1])\n"
        "request.add_header('Authorization', 'Basic ' + base64.b64encode(sys.argv[2].encode()).decode())\n"
        "print(urllib.request.urlopen(request, timeout=10).read().decode())\n"
    )
    admin = "admin:" + secret("mlflow/admin_password")
    return host.check_output(f"python3 -c {shlex.quote(source)} {shlex.quote(path)} {shlex.quote(admin)}")
