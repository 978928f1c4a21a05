"""The kserve role's inference gateway (files/gateway.py), run for real on loopback in front of a
stand-in predictor: what it lets through (with credentials, unchanged, without them) and what it
refuses, that the predictor never sees the caller's credentials, and that answered predictions go to
the prediction log (the trigger service's reference of each input) without the caller waiting."""

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
from typing import Any, ClassVar

import pytest

from mlenv_loop import assist
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


def start_gateway(folder: Path, upstream: str, **extra: Any) -> tuple[subprocess.Popen, int]:
    port = free_port()
    credentials = folder / "credentials.json"
    credentials.write_text(json.dumps({"users": {"mlenv": hashlib.sha256(f"mlenv:{PASSWORD}".encode()).hexdigest()}}))
    settings = folder / "settings.json"
    settings.write_text(json.dumps({"namespace": "team", "port": port, "address": "127.0.0.1", "upstream": upstream,
                                    "credentials_file": str(credentials), "max_body_bytes": 1024,
                                    "timeout_seconds": 5, **extra}))  # fmt: skip
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


class V2Predictor(BaseHTTPRequestHandler):
    """An MLflow model as mlenv's MLServer serves it: every text is a bug; the answers carry no model
    version, the model's metadata names the registry's (4) in `versions`."""

    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        asked = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
        rows = asked["inputs"][0]["data"]
        self.answer({"model_name": "tickets", "id": "req-1", "outputs": [
            {"name": "output-1", "datatype": "BYTES", "shape": [len(rows)], "data": ["bug"] * len(rows)}]})  # fmt: skip

    def do_GET(self) -> None:
        self.answer({"name": "tickets", "versions": ["4"], "platform": "mlflow"})

    def answer(self, body: dict) -> None:
        answer = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args: object) -> None:
        pass


class LogEndpoint(BaseHTTPRequestHandler):
    """The trigger service's POST /api/predictions, recording what it is sent."""

    received: ClassVar[list[tuple[str, dict]]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
        LogEndpoint.received.append((self.headers.get("Authorization", ""), body))
        self.send_response(202)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def serve(handler: type[BaseHTTPRequestHandler], port: int = 0) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_answered_predictions_reach_the_prediction_log_without_the_caller_waiting(tmp_path: Path) -> None:
    predictor, log_port = serve(V2Predictor), free_port()
    token = tmp_path / "token"
    token.write_text("log-token\n")
    process, port = start_gateway(tmp_path, f"http://127.0.0.1:{predictor.server_address[1]}", prediction_log={
        "url": f"http://127.0.0.1:{log_port}/api/predictions", "token_file": str(token)})  # fmt: skip
    LogEndpoint.received.clear()
    texts = ["it crashes", "charged twice", "add dark mode"]
    body = json.dumps({"inputs": [{"name": "text", "shape": [3], "datatype": "BYTES", "data": texts}]}).encode()
    try:
        # The trigger service is away: the caller is answered all the same.
        started = time.monotonic()
        status, _, answer = call(port, "POST", "/v2/models/tickets/infer", body=body)
        assert status == 200 and json.loads(answer)["outputs"][0]["data"] == ["bug"] * 3
        assert time.monotonic() - started < 1
        time.sleep(1.5)
        log = serve(LogEndpoint, log_port)  # back: what waited is sent
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not LogEndpoint.received:
            time.sleep(0.2)
        ((authorization, sent),) = LogEndpoint.received
        assert authorization == "Bearer log-token"
        assert sent["predictions"] == [
            {"request_id": "req-1", "model": "tickets", "model_version": "4", "label": "bug",
             "input_ref": assist.input_reference({"text": text})}
            for text in texts
        ]  # fmt: skip
        # Not an inference (metadata), or not answered: nothing logged.
        assert call(port, "GET", "/v2/models/tickets")[0] == 200
        time.sleep(1.5)
        assert len(LogEndpoint.received) == 1
        log.shutdown()
    finally:
        process.terminate()
        process.wait(timeout=10)
        predictor.shutdown()


def test_in_front_of_one_server_its_health_and_metadata_are_passed_on_too(predictor: int, tmp_path: Path) -> None:
    """The single host's MLServer: `mlenv status` asks it /v2/health/live through the proxy and the gateway."""
    process, port = start_gateway(tmp_path, f"http://127.0.0.1:{predictor}")
    try:
        for path in ("/v2/health/live", "/v2/health/ready", "/v2"):
            status, _, answer = call(port, "GET", path)
            assert status == 200 and json.loads(answer)["path"] == path
        assert call(port, "GET", "/v2/health/live", password=None)[0] == 401
        assert call(port, "GET", "/v2/health/other")[0] == 404
    finally:
        process.terminate()
        process.wait(timeout=10)
    # In front of one predictor per model (KServe) there is no one server to ask.
    process, port = start_gateway(tmp_path, "http://{model}-predictor.{namespace}.invalid")
    try:
        assert call(port, "GET", "/v2/health/live")[0] == 404 and call(port, "GET", "/v2")[0] == 404
    finally:
        process.terminate()
        process.wait(timeout=10)
