"""One MLflow client session as a team member runs it, for the tests: a run with params, metrics and an
artifact, a logged pyfunc model, and a registered version of it. Runs on a test host with the real client."""

from __future__ import annotations

from typing import Any

from tests.helpers.hostpython import run_python

LOG_RUN_AND_REGISTER = """
import json, os, tempfile
import mlflow
mlflow.set_experiment(os.environ["EXPERIMENT"])
with mlflow.start_run() as run:
    mlflow.log_params({"lr": 0.01, "epochs": 3})
    for step, loss in enumerate([0.9, 0.5, 0.3]):
        mlflow.log_metric("loss", loss, step=step)
    path = os.path.join(tempfile.mkdtemp(), "report.txt")
    open(path, "w").write("trained by mlenv tests")
    mlflow.log_artifact(path)
    class Identity(mlflow.pyfunc.PythonModel):
        def predict(self, context, model_input, params=None):
            return model_input
    model = mlflow.pyfunc.log_model(name="model", python_model=Identity(), pip_requirements=["mlflow"])
version = mlflow.register_model(model.model_uri, os.environ["MODEL"])
client = mlflow.MlflowClient()
run = client.get_run(run.info.run_id)
print(json.dumps({"run_id": run.info.run_id, "params": run.data.params, "loss": run.data.metrics["loss"],
                  "artifacts": [a.path for a in client.list_artifacts(run.info.run_id)], "version": version.version}))
"""


def log_run_and_register(
    host: Any, *, tracking_uri: str, password: str, experiment: str, model: str, ca_file: str = ""
) -> dict[str, Any]:
    env = {
        "MLFLOW_TRACKING_URI": tracking_uri,
        "MLFLOW_TRACKING_USERNAME": "admin",
        "MLFLOW_TRACKING_PASSWORD": password,
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "EXPERIMENT": experiment,
        "MODEL": model,
    }
    if ca_file:
        env["REQUESTS_CA_BUNDLE"] = ca_file
    return run_python(host, "/opt/mlenv/mlflow/venv/bin/python", LOG_RUN_AND_REGISTER, env)
