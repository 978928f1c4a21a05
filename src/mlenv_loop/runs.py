"""The trigger service's run listing as `mlenv runs` reads it (its API, with the service's token)."""

from __future__ import annotations

import re
import ssl
import urllib.error
import urllib.request
from typing import Any

from mlenv_loop.http import ServiceError, call_json, check_url

RUN_ID = re.compile(r"^[a-z][a-z0-9-]{0,62}-[0-9a-f]{12}$")


class RunsError(ServiceError):
    """A run that does not exist, or the trigger service refusing a call."""


class Runs:
    def __init__(self, url: str, token: str, context: ssl.SSLContext | None = None) -> None:
        self.url = check_url(url, "the trigger service")
        self._headers = {"Authorization": f"Bearer {token}"}
        self._context = context

    def _call(self, path: str) -> Any:
        try:
            return call_json("GET", f"{self.url}/api/{path}", service="the trigger service", headers=self._headers,
                             context=self._context)  # fmt: skip
        except ServiceError as err:
            raise RunsError(str(err), err.status) from None

    @staticmethod
    def _checked(run_id: str) -> str:
        if not RUN_ID.match(run_id):
            raise RunsError(f"{run_id!r} is not a run id (MODEL-<12 hex digits>, as `mlenv runs` lists them)")
        return run_id

    def list(self) -> list[dict[str, Any]]:
        return self._call("runs")["runs"]

    def projects(self) -> list[dict[str, Any]]:
        return self._call("projects")["projects"]

    def predictions(self, project_id: int) -> list[dict[str, Any]]:
        """What the ML backend predicted for the project's tasks, shown or not, oldest first."""
        return self._call(f"projects/{int(project_id)}/predictions")["predictions"]

    def get(self, run_id: str) -> dict[str, Any]:
        try:
            return self._call(f"runs/{self._checked(run_id)}")
        except RunsError as err:
            if err.status == 404:
                raise RunsError(f"there is no run {run_id}: `mlenv runs` lists them", 404) from None
            raise

    def log(self, run_id: str) -> str:
        self.get(run_id)
        request = urllib.request.Request(f"{self.url}/api/runs/{run_id}/log", headers=self._headers)  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=60, context=self._context) as response:  # noqa: S310
                return response.read().decode(errors="replace")
        except (urllib.error.URLError, OSError) as err:
            raise RunsError(f"the trigger service did not give the log of {run_id}: {err}") from None
