"""The authenticated way in to the team's predictors: basic auth, then the V2 inference protocol.

Runs in the cluster (the kserve role's mlenv-inference-gateway Deployment), in the MLflow runtime's
own image, with the standard library only. KServe's Standard mode gives predictors no
authentication of their own, and NetworkPolicies let only this gateway (and the team's workflow
pods) reach them. A request for /v2/models/<name>/... goes, once its credentials match, to that
InferenceService's predictor Service in the same namespace, and the answer comes back unchanged.
Model management (/v2/repository/...) is refused, as on the single-host model server's proxy site;
/healthz answers without credentials and says nothing but "ok".

With a prediction log configured, each inference answered is also sent, in batches and never on
the caller's time, to the trigger service: request id, model, model version, the sha256 of each
input (as the trigger service references a Label Studio task's data) and the label given, so that
human labels of the same items give the model's live accuracy.

The credentials file holds the SHA-256 of "<username>:<password>" per user, never a password: the
password is generated (32 random characters), so a fast hash is enough.
"""

from __future__ import annotations

import base64
import collections
import hashlib
import hmac
import http.client
import json
import re
import socket
import ssl
import sys
import threading
import time
import urllib.parse
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

SERVER_PATHS = {"/v2", "/v2/health/live", "/v2/health/ready"}
MODEL_PATH = re.compile(r"^/v2/models/([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)(/[^?#]*)?$")
# Not passed on: they describe one connection, or carry the caller's credentials.
HOP_BY_HOP = {
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
    "transfer-encoding", "upgrade", "authorization", "host", "content-length",
}  # fmt: skip
# How long, and how much, a refused body is read and dropped before the connection closes.
LINGER_SECONDS, LINGER_BYTES = 2.0, 8 * 1024 * 1024


# Predictions waiting to be sent at most (the oldest go first when the trigger service is away).
LOG_QUEUE_LIMIT, LOG_BATCH, LOG_EVERY_SECONDS = 10_000, 500, 1.0


def input_reference(data: dict[str, Any]) -> str:
    """sha256 of an input's data, keys sorted: the trigger service's reference of the same item."""
    return hashlib.sha256(json.dumps(data, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def predictions_of(model: str, request_body: bytes, answer: bytes, request_id: str) -> list[dict[str, Any]]:
    """One entry per input row of a V2 inference with one input and one output; none otherwise."""
    try:
        request, response = json.loads(request_body), json.loads(answer)
        (given,) = request["inputs"]
        (output,) = response["outputs"]
        rows, labels = list(given["data"]), list(output["data"])
    except (ValueError, KeyError, TypeError):
        return []
    if len(rows) != len(labels):
        return []
    version = str(response.get("model_version") or "")
    return [
        {"request_id": str(response.get("id") or request_id), "model": model, "model_version": version,
         "input_ref": input_reference({given["name"]: row}), "label": str(label)}
        for row, label in zip(rows, labels, strict=True)
    ]  # fmt: skip


class PredictionLog:
    """Sends the answered predictions to the trigger service from a thread of its own."""

    def __init__(self, url: str, token: str, ca_file: str | None) -> None:
        self.url, self._token = url, token
        self._context = ssl.create_default_context(cafile=ca_file) if ca_file else None
        self._waiting: collections.deque[dict[str, Any]] = collections.deque(maxlen=LOG_QUEUE_LIMIT)
        self.sent = 0
        threading.Thread(target=self._send_forever, daemon=True).start()

    def add(self, entries: list[dict[str, Any]]) -> None:
        self._waiting.extend(entries)

    def _send_forever(self) -> None:
        while True:
            time.sleep(LOG_EVERY_SECONDS)
            while self._waiting:
                batch = [self._waiting.popleft() for _ in range(min(LOG_BATCH, len(self._waiting)))]
                if not self._send(batch):
                    self._waiting.extendleft(reversed(batch))
                    break

    def _send(self, batch: list[dict[str, Any]]) -> bool:
        request = urllib.request.Request(  # noqa: S310 (the configured https or cluster URL)
            self.url, data=json.dumps({"predictions": batch}).encode(), method="POST",
            headers={"Authorization": f"Bearer {self._token}", "Content-Type": "application/json"},
        )  # fmt: skip
        try:
            with urllib.request.urlopen(request, timeout=10, context=self._context):  # noqa: S310
                self.sent += len(batch)
                return True
        except (OSError, ValueError) as error:
            sys.stderr.write(f"prediction log: {len(batch)} waiting, not sent ({type(error).__name__}: {error})\n")
            return False


class Upstreams(threading.local):
    """Each handler thread's open connections to the predictors, reused across its requests."""

    def __init__(self) -> None:
        self.open: dict[tuple[str, int], http.client.HTTPConnection] = {}

    def connection(self, host: str, port: int, timeout: float, *, fresh: bool = False) -> http.client.HTTPConnection:
        if fresh or (host, port) not in self.open:
            self.open[(host, port)] = http.client.HTTPConnection(host, port, timeout=timeout)
        return self.open[(host, port)]


upstreams = Upstreams()
# Each model's served version, as its metadata says, with when to ask again.
served_versions: dict[tuple[str, int, str], tuple[float, str | None]] = {}
versions_lock = threading.Lock()
VERSION_TTL_SECONDS = 5.0


def load_settings(path: str) -> dict[str, Any]:
    settings = json.loads(Path(path).read_text())
    credentials = json.loads(Path(settings["credentials_file"]).read_text())
    if not credentials.get("users"):
        raise SystemExit(f"{settings['credentials_file']} names no user: nobody could call the predictors")
    settings["users"] = credentials["users"]
    log = settings.get("prediction_log") or {}
    if log.get("url"):
        token = Path(log["token_file"]).read_text().strip()
        settings["log"] = PredictionLog(log["url"], token, log.get("ca_file"))
    return settings


def authorised(header: str | None, users: dict[str, str]) -> bool:
    """Whether an Authorization header carries a user's password (compared in constant time)."""
    if not header or not header.startswith("Basic "):
        return False
    try:
        username, _, password = base64.b64decode(header[6:], validate=True).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return False
    expected = users.get(username, "")
    given = hashlib.sha256(f"{username}:{password}".encode()).hexdigest()
    return hmac.compare_digest(given, expected) and bool(expected)


def route(path: str, settings: dict[str, Any]) -> tuple[str, int, str] | int:
    """The predictor (host, port, path) a request path goes to, or the status that refuses it."""
    parsed = urllib.parse.urlsplit(path)
    if parsed.path.startswith("/v2/repository"):
        return 403
    found = MODEL_PATH.match(parsed.path)
    one_server = "{model}" not in settings["upstream"]
    if parsed.path in SERVER_PATHS and one_server:
        # In front of one server (the single host's MLServer), its own health and metadata too.
        upstream = urllib.parse.urlsplit(settings["upstream"])
        return upstream.hostname or "", upstream.port or 80, parsed.path
    if not found:
        return 404
    upstream = urllib.parse.urlsplit(settings["upstream"].format(model=found[1], namespace=settings["namespace"]))
    target = parsed.path + (f"?{parsed.query}" if parsed.query else "")
    return upstream.hostname or "", upstream.port or 80, target


class Gateway(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes: without this, Nagle's algorithm and the caller's delayed
    # ACK hold each answer for about 40 ms.
    disable_nagle_algorithm = True
    server_version = "mlenv-inference-gateway"
    sys_version = ""
    settings: ClassVar[dict[str, Any]] = {}

    def answer(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        body = json.dumps({"error": message}).encode() if status >= 400 else message.encode()
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json" if status >= 400 else "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def read_body(self) -> bytes | int:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return 411
        length = int(self.headers.get("Content-Length") or 0)
        if length > self.settings["max_body_bytes"]:
            return 413
        return self.rfile.read(length) if length else b""

    def discard_unread_body(self) -> None:
        """Close gently after refusing a body that was not read: stop writing, then drop what the caller
        still sends (bounded in bytes and time). Closing at once with unread bytes makes the kernel send
        a reset, which can reach the caller before it has read the refusal or finished its request."""
        self.wfile.flush()
        try:
            self.connection.shutdown(socket.SHUT_WR)
            self.connection.settimeout(LINGER_SECONDS)
            deadline, dropped = time.monotonic() + LINGER_SECONDS, 0
            while dropped < LINGER_BYTES and time.monotonic() < deadline:
                chunk = self.connection.recv(65536)
                if not chunk:
                    break
                dropped += len(chunk)
        except OSError:
            pass

    def handle_request(self) -> None:
        if self.path == "/healthz":
            self.answer(200, "ok")
            return
        if not authorised(self.headers.get("Authorization"), self.settings["users"]):
            self.answer(401, "credentials needed", {"WWW-Authenticate": 'Basic realm="models"'})
            return
        target = route(self.path, self.settings)
        if isinstance(target, int):
            self.answer(target, "model management is not offered here" if target == 403 else "no such path")
            return
        body = self.read_body()
        if isinstance(body, int):
            self.close_connection = True
            self.answer(body, "send the body with a Content-Length" if body == 411 else "the body is too large")
            self.discard_unread_body()
            return
        self.forward(target, body)

    # The methods http.server dispatches to, all handled alike.
    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = handle_request

    def forward(self, target: tuple[str, int, str], body: bytes) -> None:
        host, port, path = target
        headers = {name: value for name, value in self.headers.items() if name.lower() not in HOP_BY_HOP}
        headers["Host"] = f"{host}:{port}"
        try:
            response, payload = self.exchange(host, port, path, body, headers)
        except (OSError, http.client.HTTPException) as error:
            self.answer(502, f"the predictor did not answer: {type(error).__name__}")
            return
        self.send_response(response.status, response.reason)
        for name, value in response.getheaders():
            if name.lower() not in HOP_BY_HOP:
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)
        log = self.settings.get("log")
        if log is not None and response.status == 200 and path.split("?")[0].endswith("/infer"):
            model = path.split("/")[3]
            entries = predictions_of(model, body, payload, self.headers.get("X-Request-Id") or uuid.uuid4().hex)
            version = self.served_version(host, port, model) if entries and not entries[0]["model_version"] else None
            log.add([{**entry, "model_version": version} for entry in entries] if version else entries)

    def served_version(self, host: str, port: int, model: str) -> str | None:
        """The registry version the model's metadata names (`versions`, as mlenv's followers write it),
        when its answers carry none; asked at most every VERSION_TTL_SECONDS."""
        key, now = (host, port, model), time.monotonic()
        with versions_lock:
            cached = served_versions.get(key)
        if cached and cached[0] > now:
            return cached[1]
        try:
            response, payload = self.exchange(host, port, f"/v2/models/{model}", b"", {"Host": f"{host}:{port}"}, "GET")
            found = (json.loads(payload).get("versions") or []) if response.status == 200 else []
        except (OSError, http.client.HTTPException, ValueError):
            found = []
        version = str(found[0]) if found else None
        with versions_lock:
            served_versions[key] = (now + VERSION_TTL_SECONDS, version)
        return version

    def exchange(
        self, host: str, port: int, path: str, body: bytes, headers: dict[str, str], method: str | None = None
    ) -> tuple[http.client.HTTPResponse, bytes]:
        """One request to the predictor over this thread's kept-alive connection to it; a connection the
        predictor closed meanwhile is opened again once (inference requests are safe to repeat)."""
        timeout, method = self.settings["timeout_seconds"], method or self.command
        try:
            return self.send_over(upstreams.connection(host, port, timeout), method, path, body, headers)
        except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
            fresh = upstreams.connection(host, port, timeout, fresh=True)
            return self.send_over(fresh, method, path, body, headers)

    @staticmethod
    def send_over(
        connection: http.client.HTTPConnection, method: str, path: str, body: bytes, headers: dict[str, str]
    ) -> tuple[http.client.HTTPResponse, bytes]:
        try:
            connection.request(method, path, body=body or None, headers=headers)
            response = connection.getresponse()
            return response, response.read()
        except (OSError, http.client.HTTPException):
            connection.close()
            raise

    def log_message(self, format: str, *args: Any) -> None:
        # One line per request, without headers (they hold credentials).
        sys.stderr.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {self.address_string()} {format % args}\n")


def main() -> None:
    settings = load_settings(sys.argv[1])
    Gateway.settings = settings
    server = ThreadingHTTPServer((settings.get("address", "0.0.0.0"), int(settings["port"])), Gateway)  # noqa: S104
    server.daemon_threads = True
    sys.stderr.write(f"mlenv inference gateway on port {settings['port']}, namespace {settings['namespace']}\n")
    server.serve_forever()


if __name__ == "__main__":
    main()
