"""The official clients (urllib for Label Studio's REST API, boto3), pointed at the shared stack."""

from __future__ import annotations

import base64
import json
import ssl
import urllib.error
import urllib.request
from pathlib import Path

import boto3
from botocore.config import Config

from tests.e2e.conftest import Stack

# Runs a script as a machine outside the stack would (see that file).
OUTSIDE = Path(__file__).resolve().parents[1] / "helpers/outside.py"


def request(stack: Stack, url: str, *, method: str = "GET", body: object = None, headers: dict | None = None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    for name, value in (headers or {}).items():
        req.add_header(name, value)
    context = ssl.create_default_context(cafile=stack.ca)
    try:
        with urllib.request.urlopen(req, timeout=60, context=context) as response:
            text = response.read().decode()
            return response.status, json.loads(text) if text.startswith(("{", "[")) else text
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()[:500]


def label_studio(stack: Stack, method: str, path: str, body: object = None):
    token = stack.secret("label_studio/api_token")
    return request(stack, stack.url("labels", f"/api/{path}"), method=method, body=body,
                   headers={"Authorization": f"Token {token}"})  # fmt: skip


def s3(stack: Stack, identity: str, *, secret: str | None = None, access_key: str | None = None):
    return boto3.client(
        "s3",
        endpoint_url=stack.url("s3", ""),
        region_name="us-east-1",
        aws_access_key_id=access_key or stack.secret(f"object_store/{identity}.access_key"),
        aws_secret_access_key=secret or stack.secret(f"object_store/{identity}.secret_key"),
        verify=stack.ca,
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2}),
    )


def mlflow_api(stack: Stack, path: str, *, method: str = "GET", body: object = None):
    pair = base64.b64encode(f"admin:{stack.secret('mlflow/admin_password')}".encode()).decode()
    return request(stack, stack.url("mlflow", f"/api/2.0/mlflow/{path}"), method=method, body=body,
                   headers={"Authorization": f"Basic {pair}"})  # fmt: skip
