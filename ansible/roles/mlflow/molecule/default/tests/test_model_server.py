"""The model_server role, on the mlflow scenario's host (PostgreSQL, the object store, MLflow):
MLServer answers on loopback only as its own user, serves nothing until the alias exists, then
the version the alias points at (V2 inference; the model's metadata names the version), and
follows the alias when it moves, back to an older version too (a rollback)."""

from __future__ import annotations

import json
import shlex
import time

from tests.helpers.molecule import podman_hosts, secret

testinfra_hosts = podman_hosts()
journal_units = ["mlenv-model-server", "mlenv-model-follow"]
PYTHON = "/opt/mlenv/model-server/venv/bin/python"
FOLLOW_TIMEOUT_S = 120

REGISTER = """
import json, os, sys
import mlflow, pandas as pd
from mlflow.models import infer_signature
from sklearn.compose import ColumnTransformer
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
texts = ["charged twice", "refund my payment", "invoice is wrong", "app crashes", "error on login", "page is blank"]
labels = [sys.argv[1]] * 3 + ["bug"] * 3
frame = pd.DataFrame({"text": texts})
model = Pipeline([("features", ColumnTransformer([("tfidf", TfidfVectorizer(), "text")])),
                  ("classify", LogisticRegression())]).fit(frame, labels)
mlflow.set_experiment("tickets-served")
with mlflow.start_run():
    info = mlflow.sklearn.log_model(model, name="model", signature=infer_signature(frame, model.predict(frame)))
version = mlflow.register_model(info.model_uri, "tickets-served").version
mlflow.MlflowClient().set_registered_model_alias("tickets-served", "production", version)
print(json.dumps(version))
"""

INFER = """
import json, urllib.error, urllib.request
body = json.dumps({"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["refund my payment"]}]})
request = urllib.request.Request("http://127.0.0.1:8090/v2/models/tickets-served/infer", data=body.encode(),
                                 headers={"Content-Type": "application/json"})
try:
    metadata = urllib.request.urlopen("http://127.0.0.1:8090/v2/models/tickets-served", timeout=30).read()
    version = json.loads(metadata)["versions"]
    answer = json.loads(urllib.request.urlopen(request, timeout=30).read())
    print(json.dumps({"version": version[0], "label": answer["outputs"][0]["data"][0]}))
except urllib.error.HTTPError as err:
    print(json.dumps({"status": err.code}))
"""


def mlflow_env() -> str:
    env = {"MLFLOW_TRACKING_URI": "http://127.0.0.1:5000", "MLFLOW_TRACKING_USERNAME": "admin",
           "MLFLOW_TRACKING_PASSWORD": secret("mlflow/admin_password")}  # fmt: skip
    return " ".join(f"{key}={shlex.quote(value)}" for key, value in env.items())


def register(host, first_label: str) -> str:
    out = host.check_output(f"{mlflow_env()} {PYTHON} -c {shlex.quote(REGISTER)} {first_label}")
    return json.loads(out.strip().splitlines()[-1])


def infer(host) -> dict:
    return json.loads(host.check_output(f"{PYTHON} -c {shlex.quote(INFER)}").strip().splitlines()[-1])


def served(host, version: str) -> dict:
    deadline = time.monotonic() + FOLLOW_TIMEOUT_S
    while time.monotonic() < deadline:
        answer = infer(host)
        if answer.get("version") == version:
            return answer
        time.sleep(2)
    raise AssertionError(f"version {version} not served within {FOLLOW_TIMEOUT_S} s: {answer}")


def test_the_server_and_follower_run_as_their_own_user_on_loopback(host):
    for unit in ("mlenv-model-server", "mlenv-model-follow"):
        service = host.service(unit)
        assert service.is_running and service.is_enabled
        assert host.check_output(f"ps -o user= -p $(systemctl show -p MainPID --value {unit})") == "mlenv-serve"
    # REST and metrics on loopback; none of its three ports on any other address.
    for port in (8090, 8092):
        assert host.socket(f"tcp://127.0.0.1:{port}").is_listening
    exposed = [found for found in host.socket.get_listening_sockets()
               if found.rsplit(":", 1)[-1] in {"8090", "8091", "8092"} and "127.0.0.1" not in found]  # fmt: skip
    assert exposed == []
    assert host.file("/etc/mlenv-model-server/model-server.env").mode == 0o600


def test_nothing_is_served_before_the_alias_exists(host):
    assert infer(host) == {"status": 404}


def test_the_aliased_version_is_served_and_followed_when_the_alias_moves(host):
    first = register(host, "billing")
    assert served(host, first)["label"] == "billing"
    second = register(host, "feature")
    started = time.monotonic()
    assert served(host, second)["label"] == "feature"
    print(f"alias moved → version {second} served in {time.monotonic() - started:.1f} s")
    alias(host, first)
    assert served(host, first)["label"] == "billing"


def alias(host, version: str) -> None:
    source = ("import mlflow, sys; mlflow.MlflowClient().set_registered_model_alias('tickets-served', 'production', "
              "sys.argv[1])")  # fmt: skip
    host.check_output(f"{mlflow_env()} {PYTHON} -c {shlex.quote(source)} {version}")


# Polls MLServer's liveness while it loads the aliased version, from its restart until the model is
# ready; prints the longest it took to answer.
ANSWERING = """
import json, sys, time, urllib.error, urllib.request
slowest, early, deadline, base = 0.0, False, time.monotonic() + float(sys.argv[1]), "http://127.0.0.1:8090/v2"
while time.monotonic() < deadline:
    asked = time.monotonic()
    try:
        urllib.request.urlopen(base + "/health/live", timeout=60).read()
    except (urllib.error.URLError, ConnectionError):
        time.sleep(0.2)  # not listening yet
        continue
    slowest = max(slowest, time.monotonic() - asked)
    try:
        named = urllib.request.urlopen(base + "/models/tickets-served", timeout=60).status == 200
    except urllib.error.HTTPError:
        named = False
    try:
        urllib.request.urlopen(base + "/models/tickets-served/ready", timeout=60).read()
        break
    except urllib.error.HTTPError:
        early = early or named  # the metadata named a version not ready to answer
        time.sleep(0.2)
print(json.dumps({"slowest": slowest, "ready": time.monotonic() < deadline, "named_early": early}))
"""


def test_the_server_answers_while_it_loads_a_version(host):
    """The first load after a start imports MLflow and scikit-learn and fetches the artifacts; health
    keeps answering meanwhile (`mlenv status` gives up after its probe timeout)."""
    host.check_output("systemctl restart mlenv-model-server")
    found = json.loads(host.check_output(f"{PYTHON} -c {shlex.quote(ANSWERING)} {FOLLOW_TIMEOUT_S}"))
    print(f"slowest liveness answer while the version loaded: {found['slowest']:.2f} s")
    assert found["ready"], "the aliased version did not load"
    assert found["slowest"] < 5.0, found
    # What the follower, the trigger service and the gateway read as "served" waits for the load.
    assert not found["named_early"], found
    settings = json.loads(host.file("/var/lib/mlenv-model-server/repository/models/tickets-served/model-settings.json")
                          .content_string)  # fmt: skip
    assert settings["implementation"] == "mlenv_model_runtime.MLflowRuntime"
