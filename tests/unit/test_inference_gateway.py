"""The kserve role's inference gateway (files/gateway.py), run for real on loopback in front of a
stand-in predictor: what it lets through (with credentials, unchanged, without them) and what it
refuses, and that the predictor never sees the caller's credentials."""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from tests.conftest import ROLES_DIR

GATEWAY = ROLES_DIR / "kserve/files/gateway.py"
PASSWORD = "a-generated-password-of-32-chars"


class Predictor(BaseHTTPRequestHandler):
    """Answers what it was asked, as JSON; /v2/models/<name>/ready is 503 for a model named 'cold'."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # as the gateway: no 40 ms wait on each answer
    seen: ClassVar[list[dict]] = []

    def handle_one(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        asked = {"method": self.command, "path": self.path, "headers": dict(self.headers), "body": body.decode()}
        Predictor.seen.append(asked)
        status = 503 if self.path.startswith("/v2/models/cold/ready") else 200
        answer = json.dumps(asked).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("X-Predictor", "yes")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    do_GET = do_POST = handle_one

    def log_message(self, *args: object) -> None:
        pass


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def predictor() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Predictor)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()


def start_gateway(folder: Path, upstream: str) -> tuple[subprocess.Popen, int]:
    port = free_port()
    credentials = folder / "credentials.json"
    credentials.write_text(json.dumps({"users": {"mlenv": hashlib.sha256(f"mlenv:{PASSWORD}".encode()).hexdigest()}}))
    settings = folder / "settings.json"
    settings.write_text(json.dumps({"namespace": "team", "port": port, "address": "127.0.0.1", "upstream": upstream,
                                    "credentials_file": str(credentials), "max_body_bytes": 1024,
                                    "timeout_seconds": 5}))  # fmt: skip
    # Its log to a file: a pipe nobody reads would fill and stop it.
    log = folder / "gateway.log"
    with log.open("w") as out:
        process = subprocess.Popen([sys.executable, str(GATEWAY), str(settings)], stderr=out)
    for _ in range(100):  # bounded: 10 s
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return process, port
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise AssertionError(f"the gateway did not listen: {log.read_text()}")


@pytest.fixture(scope="module")
def gateway(predictor: int, tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    process, port = start_gateway(tmp_path_factory.mktemp("gateway"), f"http://127.0.0.1:{predictor}")
    yield port
    process.terminate()
    process.wait(timeout=10)


Answer = tuple[int, dict[str, str], bytes]


def call(port: int, method: str, path: str, *, user: str = "mlenv", password: str | None = PASSWORD,
         body: bytes | None = None, headers: dict[str, str] | None = None) -> Answer:  # fmt: skip
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    sent = dict(headers or {})
    if password is not None:
        sent["Authorization"] = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    connection.request(method, path, body=body, headers=sent)
    response = connection.getresponse()
    answer = (response.status, dict(response.getheaders()), response.read())
    connection.close()
    return answer


def test_health_answers_without_credentials_and_says_nothing_more(gateway: int) -> None:
    assert call(gateway, "GET", "/healthz", password=None)[::2] == (200, b"ok")


@pytest.mark.parametrize(("user", "password"), [("mlenv", None), ("mlenv", "wrong"), ("other", PASSWORD), ("", "")])
def test_a_request_without_the_right_credentials_is_refused(gateway: int, user: str, password: str | None) -> None:
    before = len(Predictor.seen)
    status, headers, _ = call(gateway, "POST", "/v2/models/tickets/infer", user=user, password=password, body=b"{}")
    assert status == 401 and headers["WWW-Authenticate"] == 'Basic realm="models"'
    assert len(Predictor.seen) == before, "a refused request reached the predictor"


def test_an_inference_request_reaches_the_predictor_unchanged_without_the_credentials(gateway: int) -> None:
    body = json.dumps({"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["hi"]}]}).encode()
    status, headers, answer = call(
        gateway, "POST", "/v2/models/tickets/infer?x=1", body=body, headers={"Content-Type": "application/json"}
    )
    assert status == 200 and headers["X-Predictor"] == "yes"
    asked = json.loads(answer)
    assert asked["method"] == "POST" and asked["path"] == "/v2/models/tickets/infer?x=1"
    assert asked["body"] == body.decode() and asked["headers"]["Content-Type"] == "application/json"
    assert "Authorization" not in asked["headers"]


def test_the_predictors_own_status_comes_back(gateway: int) -> None:
    assert call(gateway, "GET", "/v2/models/cold/ready")[0] == 503
    assert call(gateway, "GET", "/v2/models/tickets/ready")[0] == 200


@pytest.mark.parametrize(("path", "status"), [
    ("/v2/repository/index", 403), ("/v2/repository/models/tickets/unload", 403),
    ("/v2/models/Bad_Name/infer", 404), ("/v2/models/", 404), ("/metrics", 404), ("/", 404),
])  # fmt: skip
def test_model_management_and_other_paths_are_refused(gateway: int, path: str, status: int) -> None:
    before = len(Predictor.seen)
    assert call(gateway, "POST", path, body=b"{}")[0] == status
    assert len(Predictor.seen) == before


def test_bodies_it_cannot_pass_on_are_refused_before_the_predictor(gateway: int) -> None:
    before = len(Predictor.seen)
    assert call(gateway, "POST", "/v2/models/tickets/infer", body=b"x" * 2048)[0] == 413
    chunked = http.client.HTTPConnection("127.0.0.1", gateway, timeout=10)
    auth = "Basic " + base64.b64encode(f"mlenv:{PASSWORD}".encode()).decode()
    chunked.request("POST", "/v2/models/tickets/infer", body=iter([b"{}"]), headers={"Authorization": auth},
                    encode_chunked=True)  # fmt: skip
    assert chunked.getresponse().status == 411
    assert len(Predictor.seen) == before


def test_a_predictor_that_does_not_answer_is_a_502(tmp_path: Path) -> None:
    process, port = start_gateway(tmp_path, f"http://127.0.0.1:{free_port()}")
    try:
        status, _, answer = call(port, "GET", "/v2/models/tickets/ready")
        assert status == 502 and b"did not answer" in answer
    finally:
        process.terminate()
        process.wait(timeout=10)


class ForgetfulPredictor(Predictor):
    """Closes every connection after its answer without saying so, as an idle timeout does."""

    def handle_one(self) -> None:
        super().handle_one()
        self.close_connection = True

    do_GET = do_POST = handle_one


def test_a_kept_alive_connection_the_predictor_dropped_is_opened_again(tmp_path: Path) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), ForgetfulPredictor)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    process, port = start_gateway(tmp_path, f"http://127.0.0.1:{server.server_address[1]}")
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        auth = {"Authorization": "Basic " + base64.b64encode(f"mlenv:{PASSWORD}".encode()).decode()}
        statuses = []
        for _ in range(3):  # one caller connection: one gateway thread, one kept upstream connection
            connection.request("GET", "/v2/models/tickets/ready", headers=auth)
            response = connection.getresponse()
            response.read()
            statuses.append(response.status)
        assert statuses == [200, 200, 200]
    finally:
        process.terminate()
        process.wait(timeout=10)
        server.shutdown()


def test_a_gateway_without_users_does_not_start(tmp_path: Path) -> None:
    (tmp_path / "credentials.json").write_text('{"users": {}}')
    (tmp_path / "settings.json").write_text(json.dumps({"credentials_file": str(tmp_path / "credentials.json")}))
    result = subprocess.run([sys.executable, str(GATEWAY), str(tmp_path / "settings.json")],
                            capture_output=True, text=True, timeout=30, check=False)  # fmt: skip
    assert result.returncode != 0 and "names no user" in result.stderr
