"""The landing page's program (the portal role's files/portal.py), run for real on loopback in front
of stand-in services: health as each answers (or does not), the loop's overview, charts from a
Prometheus-shaped API, and that whatever a service or project is called reaches the page escaped."""

from __future__ import annotations

import importlib.util
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from tests.conftest import ROLES_DIR

spec = importlib.util.spec_from_file_location("mlenv_portal", ROLES_DIR / "portal/files/portal.py")
assert spec and spec.loader
portal = importlib.util.module_from_spec(spec)
spec.loader.exec_module(portal)

filters_spec = importlib.util.spec_from_file_location("portal_filters", ROLES_DIR / "portal/filter_plugins/portal.py")
assert filters_spec and filters_spec.loader
filters = importlib.util.module_from_spec(filters_spec)
filters_spec.loader.exec_module(filters)

OVERVIEW = {
    "projects": [
        {
            "title": "Tickets <script>alert(1)</script>",
            "dataset": "tickets",
            "model": "tickets",
            "datasets": [{"version": "v-abc", "annotations": 12, "created_at": "2026-12-07T10:00:00"}],
            "runs": {"queued": 0, "running": 1, "succeeded": 3, "failed": 1},
            "production": {"version": "3", "live_accuracy": 0.8125, "live_pairs": 16},
        }
    ]
}


ALERTS = [
    {"labels": {"alertname": "DiskFilling", "severity": "warning"}, "annotations": {"summary": "/ has 4% free"},
     "state": "firing", "activeAt": "2026-12-07T10:00:00.5Z"},
    {"labels": {"alertname": "ServiceDown", "severity": "critical"},
     "annotations": {"summary": "<i>mlenv-loop.service</i> is not running"}, "state": "firing",
     "activeAt": "2026-12-07T10:01:00Z"},
    {"labels": {"alertname": "TargetDown", "severity": "warning"}, "annotations": {"summary": "pending"},
     "state": "pending", "activeAt": "2026-12-07T10:02:00Z"},
]  # fmt: skip


class Stand(BaseHTTPRequestHandler):
    """/ok answers 200, /broken 503, /overview the loop's overview to the right token, /api/v1 a series."""

    token: ClassVar[str] = "loop-token"

    def do_GET(self) -> None:
        if self.path == "/ok":
            self.reply(200, b"OK")
        elif self.path == "/broken":
            self.reply(503, b"down")
        elif self.path == "/overview":
            allowed = self.headers.get("Authorization") == f"Bearer {self.token}"
            self.reply(200 if allowed else 401, json.dumps(OVERVIEW).encode() if allowed else b"")
        elif self.path.startswith("/api/v1/query_range"):
            series = {"metric": {"job": "nginx"}, "values": [[1000, "1"], [1060, "3"], [1120, "2"]]}
            self.reply(200, json.dumps({"data": {"result": [series]}}).encode())
        elif self.path == "/api/v1/alerts":
            self.reply(200, json.dumps({"data": {"alerts": ALERTS}}).encode())
        else:
            self.reply(404, b"")

    def reply(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def stand() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Stand)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def settings(stand: str, tmp_path: Path, **extra: object) -> dict:
    token = tmp_path / "loop-token"
    token.write_text("loop-token\n")
    found = {
        "environment": "team <b>",
        "address": "127.0.0.1",
        "port": 0,
        "services": [
            {"service": "mlflow", "title": "MLflow", "url": "https://mlflow.x", "health_url": f"{stand}/ok",
             "version": "3.17.2"},
            {"service": "model_server", "title": "Model server", "url": "https://models.x",
             "health_url": f"{stand}/broken", "version": ""},
            {"service": "ml_loop", "title": "Trigger service", "url": "https://loop.x",
             "health_url": "http://127.0.0.1:9/health", "version": ""},
        ],
        "upstream_ca_file": "",
        "ca_certificate_file": None,
        "loop": {"url": f"{stand}/overview", "token_file": str(token)},
        "prometheus": None,
        **extra,
    }  # fmt: skip
    path = tmp_path / "portal.json"
    path.write_text(json.dumps(found))
    return portal.load_settings(str(path))


def test_each_service_is_up_only_when_it_answers_below_500(stand: str, tmp_path: Path) -> None:
    found = portal.Status(settings(stand, tmp_path)).now()
    states = {one["service"]: (one["up"], one["detail"].split(":")[0]) for one in found["services"]}
    assert states == {"mlflow": (True, "HTTP 200"), "model_server": (False, "HTTP 503"),
                      "ml_loop": (False, "unreachable")}  # fmt: skip


def test_the_page_escapes_what_services_and_projects_are_called(stand: str, tmp_path: Path) -> None:
    status = portal.Status(settings(stand, tmp_path))
    page = portal.render(status.now(), None)
    assert "<script>alert(1)</script>" not in page and "Tickets &lt;script&gt;" in page
    assert "mlenv · team &lt;b&gt;" in page
    assert '<tr data-service="model_server" data-health="down">' in page
    assert "in production <b>v3</b> · live accuracy 0.812 over 16 labels" in page
    assert '<span class="down">1 failed</span>' in page
    assert "loop-token" not in page and 'id="ca"' not in page


def test_a_wrong_loop_token_is_said_on_the_page(stand: str, tmp_path: Path) -> None:
    found = settings(stand, tmp_path)
    found["loop"]["token"] = "wrong"
    page = portal.render(portal.Status(found).now(), None)
    assert "the trigger service answered HTTP 401" in page


def test_results_are_kept_for_a_moment_only(stand: str, tmp_path: Path) -> None:
    status = portal.Status(settings(stand, tmp_path))
    first = status.now()
    assert status.now() is first
    time.sleep(portal.CACHE_S + 0.1)
    assert status.now() is not first


def test_charts_are_drawn_from_prometheus_series(stand: str, tmp_path: Path) -> None:
    charts = [{"title": "Requests", "query": "sum(rate(x[5m]))", "unit": "/s"}]
    found = portal.Status(settings(stand, tmp_path, prometheus={"url": stand, "charts": charts})).now()
    assert found["charts"][0]["lines"] == [{"label": "nginx", "points": [(1000.0, 1.0), (1060.0, 3.0), (1120.0, 2.0)]}]
    page = portal.render(found, None)
    assert '<polyline fill="none"' in page and "nginx: 2/s" in page
    empty = portal.sparkline({"title": "Nothing", "unit": "", "lines": []})
    assert "no data yet" in empty


def test_firing_alerts_are_listed_critical_first_and_pending_ones_are_not(stand: str, tmp_path: Path) -> None:
    found = portal.Status(settings(stand, tmp_path, prometheus={"url": stand, "charts": []})).now()
    assert [alert["name"] for alert in found["alerts"]["firing"]] == ["ServiceDown", "DiskFilling"]
    page = portal.render(found, None)
    assert 'data-alert="ServiceDown"' in page and 'data-alert="TargetDown"' not in page
    assert "&lt;i&gt;mlenv-loop.service&lt;/i&gt;" in page and "since 2026-12-07 10:01:00 UTC" in page


def test_without_prometheus_answering_the_alerts_say_so(stand: str, tmp_path: Path) -> None:
    found = portal.Status(settings(stand, tmp_path, prometheus={"url": "http://127.0.0.1:9", "charts": []})).now()
    assert "Prometheus is unreachable" in found["alerts"]["error"]
    assert "Prometheus is unreachable" in portal.render(found, None)
    assert 'id="alerts"' not in portal.render(portal.Status(settings(stand, tmp_path)).now(), None)


def test_the_services_come_from_the_proxy_sites_without_the_page_itself() -> None:
    sites = [
        {"name": "@", "service": "portal", "upstream": "http://127.0.0.1:8096"},
        {"name": "mlflow", "upstream": "http://127.0.0.1:5000"},
        {"name": "models", "service": "model_server", "upstream": "http://127.0.0.1:8093"},
    ]
    found = filters.portal_services(
        sites,
        {"mlflow": "https://mlflow.d", "model_server": "https://models.d"},
        {"mlflow": "3.17.2"},
        {"model_server": "http://127.0.0.1:8090/v2/health/live"},
        {"mlflow": "/health", "model_server": "/healthz"},
        {"mlflow": "MLflow"},
        "portal",
    )
    assert found == [
        {"service": "mlflow", "title": "MLflow", "url": "https://mlflow.d", "health_url": "http://127.0.0.1:5000/health",
         "version": "3.17.2"},
        {"service": "model_server", "title": "model_server", "url": "https://models.d",
         "health_url": "http://127.0.0.1:8090/v2/health/live", "version": ""},
    ]  # fmt: skip
