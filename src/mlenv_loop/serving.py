"""The model server's V2 inference protocol as mlenv reads it: which registry version a model
serves (its metadata's `versions`), and predictions for texts."""

from __future__ import annotations

import base64
import ssl
from typing import Any
from urllib.parse import quote

from mlenv_loop.http import ServiceError, call_json, check_url


class ServingError(ServiceError):
    """The model server does not serve that model, or refused a call."""


class ModelServer:
    def __init__(self, url: str, username: str, password: str, context: ssl.SSLContext | None = None) -> None:
        self.url = check_url(url, "the model server")
        self._headers = {"Authorization": "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()}
        self._context = context

    def _call(self, method: str, path: str, body: object = None) -> Any:
        try:
            return call_json(method, f"{self.url}/v2/models/{path}", service="the model server",
                             headers=self._headers, body=body, context=self._context)  # fmt: skip
        except ServiceError as err:
            raise ServingError(str(err), err.status) from None

    def served_version(self, name: str) -> str | None:
        """The registry version it serves under `name`; None when it serves none (yet)."""
        try:
            found = self._call("GET", quote(name, safe=""))
        except ServingError as err:
            if err.status in {400, 404}:
                return None
            raise
        versions = found.get("versions") or []
        return str(versions[0]) if versions else None

    def predict(self, name: str, texts: list[str]) -> list[str]:
        body = {"inputs": [{"name": "text", "shape": [len(texts)], "datatype": "BYTES", "data": texts}]}
        try:
            answer = self._call("POST", f"{quote(name, safe='')}/infer", body)
        except ServingError as err:
            if err.status in {400, 404}:
                raise ServingError(f"the model server serves no model {name!r} (yet): {err}", err.status) from None
            raise
        return [str(label) for label in answer["outputs"][0]["data"]]
