"""Data written before an upgrade and read back after it, with MLflow's own client (on a scenario's host, or from
outside the e2e stack).

`write` logs a run (params, metrics, an artifact) and registers a version of a model, and keeps what it
wrote in a JSON file; `read` reads the same things back from the server. Both print one JSON document:
what was found, and the server's version. The client settings come from MLFLOW_TRACKING_* variables.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

import mlflow
import requests

# Where `write` keeps what it wrote, for `read` to compare.
RECORD = Path(os.environ.get("UPGRADE_DATA_RECORD", "/root/mlenv-upgrade-data.json"))
NAME = "written-before-the-upgrade"


def server_version() -> str:
    auth = (os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"])
    return requests.get(os.environ["MLFLOW_TRACKING_URI"] + "/version", auth=auth, timeout=10).text


def write() -> dict:
    mlflow.set_experiment(NAME)
    with mlflow.start_run() as run:
        mlflow.log_params({"lr": "0.01", "epochs": "3"})
        for step, loss in enumerate([0.9, 0.5, 0.3]):
            mlflow.log_metric("loss", loss, step=step)
        path = Path(tempfile.mkdtemp()) / "report.txt"
        path.write_text("written before the upgrade")
        mlflow.log_artifact(str(path))
    client = mlflow.MlflowClient()
    client.create_registered_model(NAME)
    version = client.create_model_version(NAME, f"{run.info.artifact_uri}/report.txt", run_id=run.info.run_id)
    client.set_registered_model_alias(NAME, "production", version.version)
    return {"run_id": run.info.run_id}


def read(run_id: str) -> dict:
    client = mlflow.MlflowClient()
    run = client.get_run(run_id)
    artifact = Path(client.download_artifacts(run_id, "report.txt", tempfile.mkdtemp())).read_text()
    production = client.get_model_version_by_alias(NAME, "production")
    return {
        "run_id": run_id,
        "experiment": client.get_experiment(run.info.experiment_id).name,
        "params": run.data.params,
        "loss_history": [metric.value for metric in client.get_metric_history(run_id, "loss")],
        "artifact": artifact,
        "production": {"version": production.version, "run_id": production.run_id},
    }


if __name__ == "__main__":
    # Written once: a second `write` (a prepare run again) only reads.
    if sys.argv[1] == "write" and not RECORD.exists():
        RECORD.write_text(json.dumps(read(write()["run_id"])))
    found = read(json.loads(RECORD.read_text())["run_id"])
    print(json.dumps({"found": found, "written": json.loads(RECORD.read_text()), "server": server_version()}))
