"""Prometheus's HTTP API on a test host (it listens on the host's loopback), asked from inside it."""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import quote

from tests.helpers.hostpython import http_request

URL = "http://127.0.0.1:9090"


def api(host: Any, path: str) -> Any:
    """The `data` of a GET of /api/v1/<path> (path with its query, already encoded)."""
    answer = http_request(host, f"{URL}/api/v1/{path}")
    assert answer["status"] == 200, answer
    return json.loads(answer["body"])["data"]


def query(host: Any, promql: str) -> list[dict[str, Any]]:
    """An instant query's result: each series' labels and value (as a float)."""
    return [
        {"labels": one["metric"], "value": float(one["value"][1])}
        for one in api(host, f"query?query={quote(promql)}")["result"]
    ]


def firing(host: Any, alertname: str) -> list[dict[str, str]]:
    """The labels of each firing alert of that name."""
    return [
        alert["labels"]
        for alert in api(host, "alerts")["alerts"]
        if alert["labels"]["alertname"] == alertname and alert["state"] == "firing"
    ]


def wait_until(check, timeout_s: float, every_s: float = 2.0) -> tuple[Any, float | None]:
    """Calls check until it returns something true (or the time is up): that and the seconds it took."""
    started = time.monotonic()
    found = check()
    while not found and time.monotonic() - started < timeout_s:
        time.sleep(every_s)
        found = check()
    return found, (round(time.monotonic() - started, 1) if found else None)
