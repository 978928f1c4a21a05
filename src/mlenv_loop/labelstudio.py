"""The few Label Studio API calls the loop makes."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import Any

from mlenv_loop.http import ServiceError, call_json, check_url


class LabelStudioError(ServiceError):
    """Label Studio refused or could not answer a call; the message says which and why."""


@dataclass(frozen=True)
class Project:
    id: int
    title: str
    label_config: str


class LabelStudio:
    def __init__(self, url: str, token: str, context: ssl.SSLContext | None = None) -> None:
        try:
            self.url = check_url(url, "Label Studio")
        except ServiceError as err:
            raise LabelStudioError(str(err)) from None
        self._headers = {"Authorization": f"Token {token}"}
        self._context = context

    def _call(self, method: str, path: str, body: object = None) -> Any:
        try:
            return call_json(method, f"{self.url}/api/{path}", service="Label Studio", headers=self._headers,
                             body=body, context=self._context)  # fmt: skip
        except ServiceError as err:
            if err.status == 404:
                raise LabelStudioError(f"Label Studio has no {path.split('?')[0]} (404)", 404) from None
            raise LabelStudioError(str(err), err.status) from None

    def project(self, project_id: int) -> Project:
        found = self._call("GET", f"projects/{project_id}")
        return Project(id=found["id"], title=found.get("title") or "", label_config=found.get("label_config") or "")

    def export(self, project_id: int) -> list[dict[str, Any]]:
        """Every task that has an annotation, with its annotations (Label Studio's JSON export)."""
        tasks = self._call("GET", f"projects/{project_id}/export?exportType=JSON")
        if not isinstance(tasks, list):
            raise LabelStudioError(f"Label Studio's export of project {project_id} is not a list of tasks")
        return tasks

    def projects(self) -> list[dict[str, Any]]:
        """Every project's id and title, and how it shows predictions (all pages)."""
        found: list[dict[str, Any]] = []
        page = 1
        while True:
            answer = self._call("GET", f"projects?page={page}&page_size=100")
            results = answer.get("results", []) if isinstance(answer, dict) else answer
            found += [
                {"id": project["id"], "title": project.get("title") or "",
                 **{key: project[key] for key in ("model_version", "show_collab_predictions") if key in project}}
                for project in results
            ]  # fmt: skip
            if not isinstance(answer, dict) or not answer.get("next"):
                return found
            page += 1

    def webhooks(self, project_id: int | None = None) -> list[dict[str, Any]]:
        """One project's webhooks, or (no project) every webhook of the organization."""
        return list(self._call("GET", "webhooks/" if project_id is None else f"webhooks/?project={project_id}"))

    def delete_webhook(self, webhook_id: int) -> None:
        self._call("DELETE", f"webhooks/{webhook_id}/")

    def create_webhook(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._call("POST", "webhooks/", body)

    def update_webhook(self, webhook_id: int, body: dict[str, Any]) -> dict[str, Any]:
        return self._call("PATCH", f"webhooks/{webhook_id}/", body)

    def update_project(self, project_id: int, body: dict[str, Any]) -> dict[str, Any]:
        return self._call("PATCH", f"projects/{project_id}", body)

    def ml_backends(self, project_id: int) -> list[dict[str, Any]]:
        return list(self._call("GET", f"ml/?project={project_id}"))

    def create_ml_backend(self, body: dict[str, Any]) -> dict[str, Any]:
        """Label Studio checks the backend's /health and /setup before it answers."""
        return self._call("POST", "ml/", body)

    def update_ml_backend(self, backend_id: int, body: dict[str, Any]) -> dict[str, Any]:
        return self._call("PATCH", f"ml/{backend_id}", body)

    def delete_ml_backend(self, backend_id: int) -> None:
        self._call("DELETE", f"ml/{backend_id}")

    def set_task_meta(self, task_id: int, meta: dict[str, Any]) -> None:
        self._call("PATCH", f"tasks/{task_id}", {"meta": meta})
