"""MLflow's model registry over its REST API: aliases, versions and their tags, runs."""

from __future__ import annotations

import base64
import ssl
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from mlenv_loop.http import ServiceError, call_json, check_url

PRODUCTION = "production"
PREVIOUS_PRODUCTION_TAG = "mlenv.previous_production"


class RegistryError(ServiceError):
    """A model, version or alias that does not exist, or MLflow refusing a call."""


@dataclass(frozen=True)
class ModelVersion:
    name: str
    version: str
    run_id: str
    source: str
    tags: dict[str, str]
    aliases: tuple[str, ...]

    @classmethod
    def parse(cls, found: dict[str, Any]) -> ModelVersion:
        return cls(
            name=found["name"],
            version=str(found["version"]),
            run_id=found.get("run_id") or "",
            source=found.get("source") or "",
            tags={tag["key"]: tag["value"] for tag in found.get("tags") or []},
            aliases=tuple(found.get("aliases") or []),
        )


class Registry:
    def __init__(self, url: str, username: str, password: str, context: ssl.SSLContext | None = None) -> None:
        self.url = check_url(url, "MLflow")
        pair = base64.b64encode(f"{username}:{password}".encode()).decode()
        self._headers = {"Authorization": f"Basic {pair}"}
        self._context = context

    def _call(self, method: str, path: str, query: dict[str, str] | None = None, body: object = None) -> Any:
        url = f"{self.url}/api/2.0/mlflow/{path}" + (f"?{urlencode(query)}" if query else "")
        try:
            return call_json(method, url, service="MLflow", headers=self._headers, body=body, context=self._context)
        except ServiceError as err:
            raise RegistryError(str(err), err.status) from None

    def _model_version(self, path: str, query: dict[str, str], missing: str) -> ModelVersion:
        """The model version a lookup names; RegistryError(missing) when MLflow has no such thing."""
        try:
            found = self._call("GET", path, query)
        except RegistryError as err:
            text = str(err)
            if err.status == 404 or "RESOURCE_DOES_NOT_EXIST" in text or "INVALID_PARAMETER_VALUE" in text:
                raise RegistryError(missing, 404) from None
            raise
        return ModelVersion.parse(found["model_version"])

    def version(self, name: str, version: str) -> ModelVersion:
        query = {"name": name, "version": version}
        return self._model_version("model-versions/get", query, f"model {name} has no version {version}")

    def by_alias(self, name: str, alias: str) -> ModelVersion:
        query = {"name": name, "alias": alias}
        missing = f"model {name} has no version with the alias {alias!r}"
        return self._model_version("registered-models/alias", query, missing)

    def set_alias(self, name: str, alias: str, version: str) -> None:
        self._call("POST", "registered-models/alias", body={"name": name, "alias": alias, "version": version})

    def set_tag(self, name: str, version: str, key: str, value: str) -> None:
        self._call(
            "POST", "model-versions/set-tag", body={"name": name, "version": version, "key": key, "value": value}
        )

    def run(self, run_id: str) -> dict[str, Any]:
        return self._call("GET", "runs/get", {"run_id": run_id})["run"]

    # Tracking: a run of mlenv's own (a report), its metrics and its files.
    def experiment_id(self, name: str) -> str:
        """The experiment of that name, made when missing."""
        try:
            return str(
                self._call("GET", "experiments/get-by-name", {"experiment_name": name})["experiment"]["experiment_id"]
            )
        except RegistryError as err:
            if err.status != 404 and "RESOURCE_DOES_NOT_EXIST" not in str(err):
                raise
        return str(self._call("POST", "experiments/create", body={"name": name})["experiment_id"])

    def start_run(self, experiment_id: str, name: str, tags: dict[str, str]) -> dict[str, Any]:
        body = {"experiment_id": experiment_id, "run_name": name, "start_time": int(time.time() * 1000),
                "tags": [{"key": key, "value": value} for key, value in tags.items()]}  # fmt: skip
        return self._call("POST", "runs/create", body=body)["run"]["info"]

    def log_batch(self, run_id: str, metrics: dict[str, float], params: dict[str, str], step: int = 0) -> None:
        stamp = int(time.time() * 1000)
        body = {"run_id": run_id, "metrics": [{"key": key, "value": value, "timestamp": stamp, "step": step}
                                              for key, value in metrics.items()],
                "params": [{"key": key, "value": value} for key, value in params.items()]}  # fmt: skip
        self._call("POST", "runs/log-batch", body=body)

    def upload_artifact(self, run: dict[str, Any], name: str, content: bytes, content_type: str) -> None:
        """Through the server's artifact proxy (--serve-artifacts), under the run's artifact root."""
        root = str(run["artifact_uri"])
        if not root.startswith("mlflow-artifacts:/"):
            raise RegistryError(f"the run's artifacts go to {root}, not through MLflow's artifact proxy")
        url = (
            f"{self.url}/api/2.0/mlflow-artifacts/artifacts/{root.removeprefix('mlflow-artifacts:/').strip('/')}/{name}"
        )
        request = urllib.request.Request(url, data=content, method="PUT",  # noqa: S310 (MLflow's URL, checked)
                                         headers={**self._headers, "Content-Type": content_type})  # fmt: skip
        try:
            with urllib.request.urlopen(request, timeout=120, context=self._context):  # noqa: S310
                pass
        except (urllib.error.URLError, OSError) as err:
            raise RegistryError(f"MLflow did not take the artifact {name}: {err}") from None

    def end_run(self, run_id: str, status: str = "FINISHED") -> None:
        self._call("POST", "runs/update", body={"run_id": run_id, "status": status,
                                               "end_time": int(time.time() * 1000)})  # fmt: skip

    def artifacts(self, run_id: str) -> list[str]:
        return [found["path"] for found in self._call("GET", "artifacts/list", {"run_id": run_id}).get("files", [])]


def rollback(registry: Registry, name: str) -> tuple[ModelVersion, ModelVersion]:
    """Moves `production` back to the version it replaced; (from, to). Changes nothing when there is
    no production version or it replaced none."""
    current = registry.by_alias(name, PRODUCTION)
    previous = current.tags.get(PREVIOUS_PRODUCTION_TAG)
    if not previous:
        raise RegistryError(
            f"{name} version {current.version} is the first production version: there is none to roll back to"
        )
    target = registry.version(name, previous)
    registry.set_alias(name, PRODUCTION, target.version)
    registry.set_tag(name, current.version, "mlenv.rolled_back", f"production moved back to version {target.version}")
    return current, target
