"""Endpoint checks through the TLS proxy, with the platform's CA and each service's credentials.

Used by `mlenv status` and by the tests. Each check proves two things: the service answers
an authenticated request, and it refuses an anonymous one.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import time
from base64 import b64encode
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from mlenv.errors import UserError
from mlenv.outputs import Account, Outputs, read_secret

TIMEOUT_S = 5.0


@dataclass(frozen=True)
class Health:
    service: str
    url: str
    ok: bool
    detail: str
    milliseconds: float


class PinnedHTTPSConnection(http.client.HTTPSConnection):
    """Connects to a given address while checking the certificate for the URL's host name
    (as curl --connect-to does): *.mlenv.localhost is 127.0.0.1 without DNS."""

    def __init__(self, host: str, port: int, address: str, context: ssl.SSLContext) -> None:
        super().__init__(host, port, timeout=TIMEOUT_S, context=context)
        self._address = address
        self._tls = context

    def connect(self) -> None:
        raw = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._tls.wrap_socket(raw, server_hostname=self.host)


def https_get(url: str, *, context: ssl.SSLContext, address: str | None, headers: dict[str, str]) -> tuple[int, bytes]:
    parts = urlsplit(url)
    host, port = parts.hostname or "", parts.port or 443
    if address:
        connection: http.client.HTTPSConnection = PinnedHTTPSConnection(host, port, address, context)
    else:
        connection = http.client.HTTPSConnection(host, port, timeout=TIMEOUT_S, context=context)
    try:
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


@dataclass(frozen=True)
class Probe:
    """An authenticated GET that must succeed and an anonymous one that must be refused."""

    path: str
    auth: Callable[[], dict[str, str]]
    refused: tuple[int, ...] = (401, 403)


def probes(outputs: Outputs, state: Path) -> dict[str, Probe]:
    def secret(account: Account, kind: str) -> str:
        return read_secret(state, account, kind).split()[0]

    def basic(account: Account) -> Callable[[], dict[str, str]]:
        def header() -> dict[str, str]:
            pair = f"{account.username}:{secret(account, 'password')}"
            return {"Authorization": "Basic " + b64encode(pair.encode()).decode()}

        return header

    def token(account: Account) -> Callable[[], dict[str, str]]:
        return lambda: {"Authorization": f"Token {secret(account, 'api_token')}"}

    def s3_signer(account: Account) -> Callable[[], dict[str, str]]:
        """SigV4 headers for ListBuckets with the platform's key pair (botocore signs)."""

        def headers() -> dict[str, str]:
            from botocore.auth import SigV4Auth
            from botocore.awsrequest import AWSRequest
            from botocore.credentials import Credentials

            url = outputs.url("object_store") + "/"
            credentials = Credentials(secret(account, "access_key"), secret(account, "secret_key"))
            request = AWSRequest(method="GET", url=url, headers={"Host": urlsplit(url).netloc})
            SigV4Auth(credentials, "s3", outputs.region).add_auth(request)
            return dict(request.headers.items())

        return headers

    def bearer(account: Account) -> Callable[[], dict[str, str]]:
        return lambda: {"Authorization": f"Bearer {secret(account, 'api_token')}"}

    kinds: dict[str, tuple[str, Callable[[Account], Callable[[], dict[str, str]]]]] = {
        "mlflow": ("/api/2.0/mlflow/experiments/search?max_results=1", basic),
        "label_studio": ("/api/projects?page_size=1", token),
        "object_store": ("/", s3_signer),
        "ml_loop": ("/api/runs", bearer),
        "model_server": ("/v2/health/live", basic),
        "portal": ("/healthz", basic),
    }
    return {
        service: Probe(kinds[service][0], kinds[service][1](endpoint.account))
        for service, endpoint in outputs.services.items()
        if service in kinds and endpoint.account is not None
    }


def check(service: str, url: str, probe: Probe, context: ssl.SSLContext, address: str | None) -> Health:
    started = time.perf_counter()
    try:
        anonymous, _ = https_get(url + probe.path, context=context, address=address, headers={})
        status, _ = https_get(url + probe.path, context=context, address=address, headers=probe.auth())
    except (OSError, http.client.HTTPException, ssl.SSLError) as err:
        return Health(service, url, False, f"unreachable: {err}", _ms(started))
    except (KeyError, UserError) as err:
        return Health(service, url, False, f"credentials missing: {err}", _ms(started))
    if status != 200:
        return Health(service, url, False, f"authenticated request got HTTP {status}", _ms(started))
    if anonymous not in probe.refused:
        return Health(service, url, False, f"anonymous request got HTTP {anonymous}, not refused", _ms(started))
    return Health(service, url, True, f"auth OK, anonymous refused ({anonymous})", _ms(started))


def check_all(outputs: Outputs, state: Path, address: str | None) -> list[Health]:
    """Every service in outputs.json, in parallel; a service without a probe is reported down."""
    context = outputs.ssl_context()
    known = probes(outputs, state)
    with ThreadPoolExecutor(max_workers=max(1, len(outputs.services))) as pool:
        futures = [
            pool.submit(check, name, endpoint.url, known[name], context, address)
            if name in known
            else pool.submit(Health, name, endpoint.url, False, "no credentials in outputs.json (re-run mlenv up)", 0.0)
            for name, endpoint in outputs.services.items()
        ]
        return [future.result() for future in futures]


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)


def wait_until_up(outputs: Outputs, state: Path, address: str | None, *, timeout_s: float) -> list[str]:
    """Checks until every service answers or `timeout_s` passed; the services still down (none: [])."""
    deadline = time.monotonic() + timeout_s
    while True:
        down = [health.service for health in check_all(outputs, state, address) if not health.ok]
        if not down or time.monotonic() > deadline:
            return down
        time.sleep(3)
