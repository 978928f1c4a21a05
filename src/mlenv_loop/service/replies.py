"""What every route of the service shares: its refusals, a JSON body read within a size, and a
Bearer token compared in constant time."""

from __future__ import annotations

import hmac
import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse


def refuse(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def bearer_matches(request: Request, token: str) -> bool:
    given = request.headers.get("authorization", "")
    return bool(token) and hmac.compare_digest(given.encode(), f"Bearer {token}".encode())


async def json_body(request: Request, limit: int) -> dict[str, Any] | JSONResponse:
    """The body as a JSON object, or the refusal (413 over `limit` bytes, 400 otherwise)."""
    if int(request.headers.get("content-length") or 0) > limit:
        return refuse(413, f"the body is over {limit} bytes")
    try:
        body = json.loads(await request.body())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        return refuse(400, f"the body is not JSON ({err})")
    return body if isinstance(body, dict) else refuse(400, "the body is not a JSON object")
