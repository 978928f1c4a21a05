"""JSON over HTTP(S) with the standard library, for the services' REST APIs."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlsplit

from mlenv_loop.errors import LoopError

TIMEOUT_S = 60


class ServiceError(LoopError):
    """A service refused or could not answer a call; `status` is its HTTP status (0: unreachable)."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


def check_url(url: str, service: str) -> str:
    if urlsplit(url).scheme not in {"http", "https"}:
        raise ServiceError(f"{service} URL {url!r}: give an http:// or https:// URL")
    return url.rstrip("/")


def call_json(
    method: str,
    url: str,
    *,
    service: str,
    headers: dict[str, str],
    body: object = None,
    context: ssl.SSLContext | None = None,
) -> Any:
    """The decoded answer; ServiceError naming the service, the call and its answer otherwise."""
    request = urllib.request.Request(  # noqa: S310 (every URL went through check_url)
        url,
        data=None if body is None else json.dumps(body).encode(),
        method=method,
        headers={**headers, "Content-Type": "application/json"},
    )
    path = urlsplit(url).path
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S, context=context) as response:  # noqa: S310
            text = response.read().decode()
    except urllib.error.HTTPError as err:
        detail = err.read().decode(errors="replace")[:300]
        raise ServiceError(f"{service} answered {err.code} to {method} {path}: {detail}", err.code) from None
    except OSError as err:
        raise ServiceError(f"{service} at {url.split(path)[0]} cannot be reached: {err}") from None
    return json.loads(text) if text else None
