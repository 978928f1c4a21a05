"""The platform at a glance: every service with its link, health and version, the CA to trust, and
where the ML loop stands, as one plain HTML page (and the same as JSON at /api/status).

Runs on the proxy's host (the portal role's mlenv-portal unit) with the standard library only; the
proxy serves it at the bare domain behind basic auth. Health is asked of each service's own upstream
(what the proxy would reach) at request time, all at once, with a short timeout; any answer below
500 is "up" and anything else is "down" with the reason. The loop's figures come from the trigger
service's /api/overview with its API token, which stays on the host: the page carries no secret.
Charts are Prometheus's series drawn here as inline SVG, and its firing alerts are listed, when a
Prometheus is configured.
/healthz answers "ok" and asks nothing of anyone.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import ssl
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

# How long one service may take to answer before it is shown as down; the whole page waits at most that.
CHECK_TIMEOUT_S = 3.0
# Seconds a result is reused: a burst of page loads asks each service once.
CACHE_S = 2.0
REFRESH_S = 30


def load_settings(path: str) -> dict[str, Any]:
    settings = json.loads(Path(path).read_text())
    token_file = (settings.get("loop") or {}).get("token_file")
    if token_file:
        settings["loop"]["token"] = Path(token_file).read_text().strip()
    ca_file = settings.get("ca_certificate_file")
    settings["ca_certificate"] = Path(ca_file).read_text() if ca_file else None
    return settings


def fetch(url: str, *, context: ssl.SSLContext, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    """GET url: its status and body; an HTTP error is an answer too (its status)."""
    request = urllib.request.Request(url, headers=headers or {})  # noqa: S310 (http(s) URLs from the settings)
    try:
        with urllib.request.urlopen(request, timeout=CHECK_TIMEOUT_S, context=context) as response:  # noqa: S310
            return response.status, response.read(1 << 20)
    except urllib.error.HTTPError as err:
        return err.code, b""


def check(service: dict[str, Any], context: ssl.SSLContext) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        status, _ = fetch(service["health_url"], context=context)
    except (OSError, ValueError) as err:
        reason = getattr(err, "reason", err)
        return {"up": False, "detail": f"unreachable: {reason}", "ms": _ms(started)}
    if status >= 500:
        return {"up": False, "detail": f"HTTP {status}", "ms": _ms(started)}
    return {"up": True, "detail": f"HTTP {status}", "ms": _ms(started)}


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)


def loop_overview(loop: dict[str, Any] | None, context: ssl.SSLContext) -> dict[str, Any] | None:
    """The trigger service's overview, or why there is none (None: no loop on this platform)."""
    if not loop:
        return None
    try:
        status, body = fetch(loop["url"], context=context, headers={"Authorization": f"Bearer {loop['token']}"})
    except (OSError, ValueError) as err:
        return {"error": f"the trigger service is unreachable: {getattr(err, 'reason', err)}"}
    if status != 200:
        return {"error": f"the trigger service answered HTTP {status}"}
    try:
        return json.loads(body)
    except ValueError:
        return {"error": "the trigger service answered something that is not JSON"}


def prometheus_series(prometheus: dict[str, Any] | None, context: ssl.SSLContext) -> list[dict[str, Any]]:
    """The key series of the last hour, each a list of (time, value) per labelled line."""
    if not prometheus:
        return []
    end = time.time()
    found = []
    for chart in prometheus.get("charts", []):
        query = urllib.parse.urlencode({"query": chart["query"], "start": end - 3600, "end": end, "step": 60})
        try:
            status, body = fetch(f"{prometheus['url']}/api/v1/query_range?{query}", context=context)
            result = json.loads(body)["data"]["result"] if status == 200 else []
        except (OSError, ValueError, KeyError):
            result = []
        lines = [
            {
                "label": ", ".join(f"{value}" for key, value in sorted(line["metric"].items()) if key != "__name__"),
                "points": [(float(at), float(value)) for at, value in line["values"] if value not in ("NaN", "+Inf")],
            }
            for line in result
        ]
        found.append({"title": chart["title"], "unit": chart.get("unit", ""), "lines": lines})
    return found


def prometheus_alerts(prometheus: dict[str, Any] | None, context: ssl.SSLContext) -> dict[str, Any] | None:
    """The alerts firing now (name, severity, summary, since), or why they are unknown (None: no
    Prometheus on this platform)."""
    if not prometheus:
        return None
    try:
        status, body = fetch(f"{prometheus['url']}/api/v1/alerts", context=context)
        alerts = json.loads(body)["data"]["alerts"] if status == 200 else None
    except (OSError, ValueError, KeyError) as err:
        return {"error": f"Prometheus is unreachable: {getattr(err, 'reason', err)}"}
    if alerts is None:
        return {"error": f"Prometheus answered HTTP {status}"}
    firing = [
        {
            "name": alert["labels"].get("alertname", "?"),
            "severity": alert["labels"].get("severity", ""),
            "summary": alert.get("annotations", {}).get("summary", ""),
            "since": alert.get("activeAt", "")[:19].replace("T", " "),
        }
        for alert in alerts
        if alert.get("state") == "firing"
    ]
    return {"firing": sorted(firing, key=lambda alert: (alert["severity"] != "critical", alert["name"]))}


class Status:
    """What the page shows, asked of everyone at once and kept for CACHE_S."""

    def __init__(self, settings: dict[str, Any]) -> None:
        self.settings = settings
        cafile = settings.get("upstream_ca_file") or None
        self.context = ssl.create_default_context(cafile=cafile if cafile and Path(cafile).is_file() else None)
        self.pool = ThreadPoolExecutor(max_workers=16)
        self.kept: tuple[float, dict[str, Any]] | None = None

    def now(self) -> dict[str, Any]:
        if self.kept and time.monotonic() - self.kept[0] < CACHE_S:
            return self.kept[1]
        services = self.settings["services"]
        checks = [self.pool.submit(check, service, self.context) for service in services]
        loop = self.pool.submit(loop_overview, self.settings.get("loop"), self.context)
        charts = self.pool.submit(prometheus_series, self.settings.get("prometheus"), self.context)
        alerts = self.pool.submit(prometheus_alerts, self.settings.get("prometheus"), self.context)
        found = {
            "environment": self.settings["environment"],
            "checked_at": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
            "services": [
                {
                    "service": service["service"],
                    "title": service["title"],
                    "url": service["url"],
                    "version": service.get("version") or "",
                    **future.result(),
                }
                for service, future in zip(services, checks, strict=True)
            ],
            "ca_certificate": bool(self.settings.get("ca_certificate")),
            "loop": loop.result(),
            "charts": charts.result(),
            "alerts": alerts.result(),
        }
        self.kept = (time.monotonic(), found)
        return found


def fingerprint(pem: str) -> str:
    body = "".join(line for line in pem.splitlines() if line and not line.startswith("-----"))
    digest = hashlib.sha256(base64.b64decode(body)).hexdigest().upper()
    return ":".join(digest[index : index + 2] for index in range(0, len(digest), 2))


STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1d1d1f;background:#f6f7f9}
header{background:#1f3b5c;color:#fff;padding:14px 18px}header h1{font-size:20px;margin:0}
header p{margin:4px 0 0;font-size:13px;opacity:.85}
main{max-width:980px;margin:0 auto;padding:12px}
section{background:#fff;border-radius:8px;padding:12px 16px;margin:12px 0;box-shadow:0 1px 2px #0002}
h2{font-size:16px;margin:4px 0 10px}table{border-collapse:collapse;width:100%;font-size:14px}
th,td{text-align:left;padding:6px 8px;border-bottom:1px solid #eee;vertical-align:top}
.up{color:#137333;font-weight:600}.down{color:#b3261e;font-weight:600}.muted{color:#666;font-size:12px}
code{font-size:12px;word-break:break-all}.cards{display:flex;flex-wrap:wrap;gap:12px}
.card{flex:1 1 280px;border:1px solid #e3e3e3;border-radius:6px;padding:10px}
.card h3{font-size:15px;margin:0 0 6px}svg{max-width:100%;height:auto}
@media (max-width:600px){th.optional,td.optional{display:none}}
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def render(status: dict[str, Any], ca_pem: str | None) -> str:
    up = sum(1 for service in status["services"] if service["up"])
    rows = []
    for service in status["services"]:
        state = "up" if service["up"] else "down"
        rows.append(
            f'<tr data-service="{_e(service["service"])}" data-health="{state}">'
            f'<td>{_e(service["title"])}</td><td><a href="{_e(service["url"])}">{_e(service["url"])}</a></td>'
            f'<td class="{state}">{state}<br>'
            f'<span class="muted">{_e(service["detail"])}, {service["ms"]} ms</span></td>'
            f'<td class="optional">{_e(service["version"]) or "—"}</td></tr>'
        )
    parts = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f'<meta http-equiv="refresh" content="{REFRESH_S}">',
        f"<title>mlenv · {_e(status['environment'])}</title><style>{STYLE}</style></head><body>",
        f"<header><h1>mlenv · {_e(status['environment'])}</h1>",
        f'<p id="summary">{up} of {len(status["services"])} services up · checked {_e(status["checked_at"])}</p>',
        "</header><main>",
        '<section id="services"><h2>Services</h2><table><thead><tr><th>Service</th><th>Address</th>'
        '<th>Health</th><th class="optional">Version</th></tr></thead><tbody>',
        *rows,
        "</tbody></table></section>",
    ]
    parts += render_alerts(status.get("alerts"))
    parts += render_loop(status.get("loop"))
    parts += render_charts(status.get("charts") or [])
    if ca_pem:
        parts.append(
            '<section id="ca"><h2>Trust the platform\'s CA</h2><p>Every address above is signed by this '
            'environment\'s own certificate authority: <a href="/ca.crt" download="mlenv-ca.crt">download '
            f"mlenv-ca.crt</a> and add it to your system or browser.</p><p class=muted>SHA-256 fingerprint: "
            f"<code>{_e(fingerprint(ca_pem))}</code></p></section>"
        )
    parts.append("</main></body></html>")
    return "".join(parts)


def render_alerts(alerts: dict[str, Any] | None) -> list[str]:
    if alerts is None:
        return []
    parts = ['<section id="alerts"><h2>Alerts</h2>']
    if "error" in alerts:
        return [*parts, f'<p class="down">{_e(alerts["error"])}</p></section>']
    if not alerts["firing"]:
        return [*parts, '<p class="up">No alert is firing.</p></section>']
    items = "".join(
        f'<li data-alert="{_e(alert["name"])}"><span class="{"down" if alert["severity"] == "critical" else ""}">'
        f"{_e(alert['name'])}</span>: {_e(alert['summary'])} "
        f'<span class="muted">since {_e(alert["since"])} UTC</span></li>'
        for alert in alerts["firing"]
    )
    return [*parts, f"<ul>{items}</ul></section>"]


def render_loop(loop: dict[str, Any] | None) -> list[str]:
    if loop is None:
        return []
    parts = ['<section id="loop"><h2>ML loop</h2>']
    if "error" in loop:
        return [*parts, f'<p class="down">{_e(loop["error"])}</p></section>']
    if not loop.get("projects"):
        return [*parts, "<p>No labelling project is connected yet.</p></section>"]
    parts.append('<div class="cards">')
    for project in loop["projects"]:
        runs = project.get("runs", {})
        production = project.get("production") or {}
        accuracy = production.get("live_accuracy")
        datasets = "".join(
            f"<li><code>{_e(one['version'])}</code> · {_e(one['annotations'])} labels · "
            f'<span class="muted">{_e(one["created_at"])}</span></li>'
            for one in project.get("datasets", [])
        )
        live = (
            f"{accuracy:.3f} over {production.get('live_pairs', 0)} labels"
            if accuracy is not None
            else "not measured yet"
        )
        parts.append(
            f'<div class="card" data-project="{_e(project["title"])}"><h3>{_e(project["title"])}</h3>'
            f"<p>Model <b>{_e(project['model'])}</b>: in production "
            f"<b>{_e('v' + str(production['version'])) if production.get('version') else 'none yet'}</b>"
            f" · live accuracy {_e(live)}</p>"
            f"<p>Training runs: {runs.get('running', 0)} running, {runs.get('queued', 0)} queued, "
            f'<span class="{"down" if runs.get("failed") else ""}">{runs.get("failed", 0)} failed</span>, '
            f"{runs.get('succeeded', 0)} succeeded</p>"
            f"<p>Latest dataset versions of <code>{_e(project['dataset'])}</code>:</p>"
            f"<ul>{datasets or '<li>none yet</li>'}</ul></div>"
        )
    return [*parts, "</div></section>"]


CHART_W, CHART_H = 300, 90
COLOURS = ("#2f6fbf", "#c2571a", "#2e8540", "#7b4fb0", "#8a8a8a")


def render_charts(charts: list[dict[str, Any]]) -> list[str]:
    if not charts:
        return []
    parts = ['<section id="charts"><h2>Last hour</h2><div class="cards">']
    for chart in charts:
        parts.append(f'<div class="card"><h3>{_e(chart["title"])}</h3>{sparkline(chart)}</div>')
    return [*parts, "</div></section>"]


def sparkline(chart: dict[str, Any]) -> str:
    """The chart's lines on shared axes, drawn here (no script); an empty one says so."""
    points = [point for line in chart["lines"] for point in line["points"]]
    if not points:
        return '<p class="muted">no data yet</p>'
    start, end = min(at for at, _ in points), max(at for at, _ in points)
    top = max(value for _, value in points) or 1.0
    span = (end - start) or 1.0
    paths, legend = [], []
    for index, line in enumerate(chart["lines"][: len(COLOURS)]):
        drawn = " ".join(
            f"{(at - start) / span * CHART_W:.1f},{CHART_H - value / top * (CHART_H - 4):.1f}"
            for at, value in line["points"]
        )
        paths.append(f'<polyline fill="none" stroke="{COLOURS[index]}" stroke-width="1.5" points="{drawn}"/>')
        latest = line["points"][-1][1] if line["points"] else None
        shown = f"{latest:.3g}{chart['unit']}" if latest is not None else "—"
        legend.append(
            f'<span style="color:{COLOURS[index]}">■</span> {_e(line["label"] or chart["title"])}: {_e(shown)}'
        )
    return (
        f'<svg role="img" aria-label="{_e(chart["title"])}" viewBox="0 0 {CHART_W} {CHART_H}" width="{CHART_W}" '
        f'height="{CHART_H}" xmlns="http://www.w3.org/2000/svg"><rect width="{CHART_W}" height="{CHART_H}" '
        f'fill="#fafafa"/>{"".join(paths)}</svg><p class="muted">{"<br>".join(legend)}</p>'
    )


class Portal(BaseHTTPRequestHandler):
    status: ClassVar[Status]
    server_version = "mlenv-portal"
    sys_version = ""

    def do_GET(self) -> None:
        path = urllib.parse.urlsplit(self.path).path
        if path == "/healthz":
            self.answer(200, "text/plain; charset=utf-8", b"ok\n")
        elif path == "/":
            found = self.status.now()
            page = render(found, self.status.settings.get("ca_certificate"))
            self.answer(200, "text/html; charset=utf-8", page.encode())
        elif path == "/api/status":
            self.answer(200, "application/json", json.dumps(self.status.now()).encode())
        elif path == "/ca.crt" and self.status.settings.get("ca_certificate"):
            self.answer(200, "application/x-pem-file", self.status.settings["ca_certificate"].encode())
        else:
            self.answer(404, "text/plain; charset=utf-8", b"not found\n")

    def answer(self, code: int, content_type: str, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        sys.stderr.write(f"{self.address_string()} {format % args}\n")


def main() -> None:
    settings = load_settings(sys.argv[1])
    Portal.status = Status(settings)
    server = ThreadingHTTPServer((settings["address"], int(settings["port"])), Portal)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
