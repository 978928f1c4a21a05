"""Keeps each followed InferenceService serving the model version its MLflow alias points at.

Runs in the cluster (the kserve role's mlenv-model-follow Deployment), in the MLflow runtime's own
image, with the standard library only. Every few seconds it asks MLflow where each model's alias
points and compares that with the version the InferenceService was given (its annotation
mlenv.io/model-version). When they differ (the gate promoted a version, `mlenv model rollback`
moved the alias back), it patches the storage URI, and KServe rolls the predictor over: the old
pods answer until the new ones are ready. A model with no such alias yet gets no
InferenceService; once it has one, the InferenceService is created. A failure is logged once and
tried again at the next look.
"""

from __future__ import annotations

import base64
import json
import os
import ssl
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

VERSION_ANNOTATION = "mlenv.io/model-version"
ALIAS_ANNOTATION = "mlenv.io/model-alias"
ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")
MERGE_PATCH = "application/merge-patch+json"


def storage_uri(artifact_uri: str, bucket: str) -> str:
    """Where KServe's storage initializer reads a version MLflow keeps: its proxied artifacts
    (mlflow-artifacts:/…) are the objects under s3://<bucket>/."""
    uri = artifact_uri.replace("mlflow-artifacts:/", f"s3://{bucket}/", 1)
    if not uri.startswith(f"s3://{bucket}/") or uri == f"s3://{bucket}/":
        raise ValueError(f"model artifacts at {artifact_uri} are outside the object store's bucket {bucket}")
    return uri


def wanted(service: dict[str, Any], alias: str, version: str, uri: str) -> dict[str, Any]:
    """The InferenceService serving this version: the rendered shape with its storage and annotations."""
    body = json.loads(json.dumps(service))
    annotations = body["metadata"].setdefault("annotations", {})
    annotations.update({VERSION_ANNOTATION: version, ALIAS_ANNOTATION: alias})
    body["spec"]["predictor"]["model"]["storageUri"] = uri
    return body


def change(current: dict[str, Any] | None, desired: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """What to send: create it, patch its storage and version, or nothing (it serves that version)."""
    if current is None:
        return "create", desired
    annotations = current.get("metadata", {}).get("annotations") or {}
    model = current.get("spec", {}).get("predictor", {}).get("model", {})
    version = desired["metadata"]["annotations"][VERSION_ANNOTATION]
    uri = desired["spec"]["predictor"]["model"]["storageUri"]
    if annotations.get(VERSION_ANNOTATION) == version and model.get("storageUri") == uri:
        return None
    patch = {
        "metadata": {"annotations": {key: desired["metadata"]["annotations"][key]
                                     for key in (VERSION_ANNOTATION, ALIAS_ANNOTATION)}},
        "spec": {"predictor": {"model": {"storageUri": uri}}},
    }  # fmt: skip
    return "patch", patch


def call(url: str, *, method: str = "GET", headers: dict[str, str], context: ssl.SSLContext,
         body: dict[str, Any] | None = None, content_type: str = "application/json") -> Any:  # fmt: skip
    data = json.dumps(body).encode() if body is not None else None
    # Only the https:// URLs of the settings and the API server's address are ever opened.
    request = urllib.request.Request(url, method=method, data=data, headers={"Content-Type": content_type, **headers})  # noqa: S310
    with urllib.request.urlopen(request, timeout=30, context=context) as answer:  # noqa: S310
        text = answer.read()
    return json.loads(text) if text else None


class MLflow:
    def __init__(self, url: str, context: ssl.SSLContext) -> None:
        pair = f"{os.environ['MLFLOW_TRACKING_USERNAME']}:{os.environ['MLFLOW_TRACKING_PASSWORD']}"
        self.url, self.context = url.rstrip("/"), context
        self.headers = {"Authorization": "Basic " + base64.b64encode(pair.encode()).decode()}

    def get(self, path: str, **query: str) -> Any:
        url = f"{self.url}/api/2.0/mlflow/{path}?{urllib.parse.urlencode(query)}"
        return call(url, headers=self.headers, context=self.context)

    def aliased(self, name: str, alias: str) -> tuple[str, str] | None:
        """(version, artifact URI) behind the alias, or None while there is none."""
        try:
            found = self.get("registered-models/alias", name=name, alias=alias)["model_version"]
        except urllib.error.HTTPError as err:
            # MLflow's auth answers 403 for a model that does not exist yet, as for one it may not read.
            if err.code in (403, 404):
                return None
            raise
        version = str(found["version"])
        return version, self.get("model-versions/get-download-uri", name=name, version=version)["artifact_uri"]


class Kubernetes:
    """The API server as the pod's service account (its token is read at every call: it rotates)."""

    def __init__(self, namespace: str) -> None:
        host, port = os.environ["KUBERNETES_SERVICE_HOST"], os.environ["KUBERNETES_SERVICE_PORT"]
        self.base = f"https://{host}:{port}/apis/serving.kserve.io/v1beta1/namespaces/{namespace}/inferenceservices"
        self.context = ssl.create_default_context(cafile=str(ACCOUNT / "ca.crt"))

    def _headers(self) -> dict[str, str]:
        return {"Authorization": "Bearer " + (ACCOUNT / "token").read_text().strip()}

    def get(self, name: str) -> dict[str, Any] | None:
        try:
            return call(f"{self.base}/{name}", headers=self._headers(), context=self.context)
        except urllib.error.HTTPError as err:
            if err.code == 404:
                return None
            raise

    def send(self, name: str, action: str, body: dict[str, Any]) -> None:
        if action == "create":
            call(self.base, method="POST", headers=self._headers(), context=self.context, body=body)
        else:
            call(f"{self.base}/{name}", method="PATCH", headers=self._headers(), context=self.context, body=body,
                 content_type=MERGE_PATCH)  # fmt: skip


def follow(settings: dict[str, Any], model: dict[str, Any], mlflow: MLflow, kubernetes: Kubernetes) -> None:
    name, alias = model["name"], model["alias"]
    found = mlflow.aliased(name, alias)
    if found is None:
        return
    version, artifacts = found
    desired = wanted(model["service"], alias, version, storage_uri(artifacts, settings["bucket"]))
    todo = change(kubernetes.get(name), desired)
    if todo is not None:
        kubernetes.send(name, *todo)
        print(f"{name}@{alias} → version {version} ({todo[0]})", flush=True)


def main(path: str) -> None:
    settings = json.loads(Path(path).read_text())
    ca = os.environ.get("MLENV_CA_FILE") or None
    mlflow = MLflow(settings["mlflow_url"], ssl.create_default_context(cafile=ca))
    kubernetes = Kubernetes(settings["namespace"])
    said: dict[str, str] = {}
    while True:
        for model in settings["models"]:
            try:
                follow(settings, model, mlflow, kubernetes)
                said.pop(model["name"], None)
            except (OSError, ValueError, KeyError) as err:
                if said.get(model["name"]) != str(err):  # once per problem, not once per look
                    said[model["name"]] = str(err)
                    print(f"{model['name']}: {err} (trying every {settings['pause_seconds']} s)", file=sys.stderr,
                          flush=True)  # fmt: skip
        time.sleep(settings["pause_seconds"])


if __name__ == "__main__":
    main(sys.argv[1])
