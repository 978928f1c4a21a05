"""Run a Python snippet on a test host and read back its JSON answer.

Clients that need libraries (boto3, mlflow) run where those are installed, on the
host, against the real service; the snippet prints one JSON document.
"""

from __future__ import annotations

import json
import shlex
from typing import Any


class HostPythonError(AssertionError):
    pass


def run_python(host: Any, interpreter: str, source: str, env: dict[str, str] | None = None) -> Any:
    assignments = " ".join(f"{key}={shlex.quote(value)}" for key, value in (env or {}).items())
    result = host.run(f"{assignments} {interpreter} -c {shlex.quote(source)}")
    if result.rc != 0:
        raise HostPythonError(f"exit {result.rc}:\n{result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


S3_PROBE = """
import json, os, sys
import boto3, botocore
s3 = boto3.client("s3", endpoint_url=os.environ["ENDPOINT"], region_name="us-east-1",
                  aws_access_key_id=os.environ["ACCESS_KEY"], aws_secret_access_key=os.environ["SECRET_KEY"])
def attempt(call):
    try:
        return {"ok": True, "value": call()}
    except botocore.exceptions.ClientError as err:
        return {"ok": False, "error": err.response["Error"]["Code"]}
    except botocore.exceptions.BotoCoreError as err:
        return {"ok": False, "error": type(err).__name__}
bucket, key = os.environ["BUCKET"], os.environ["KEY"]
answer = {
    "put": attempt(lambda: s3.put_object(Bucket=bucket, Key=key, Body=b"mlenv")["ETag"]),
    "get": attempt(lambda: s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode()),
    "list": attempt(lambda: [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]),
    "versioning": attempt(lambda: s3.get_bucket_versioning(Bucket=bucket).get("Status", "")),
}
print(json.dumps(answer))
"""


def s3_probe(host: Any, interpreter: str, *, endpoint: str, access_key: str, secret_key: str, bucket: str) -> dict:
    """Put, get and list one object and read the bucket's versioning, as the given identity."""
    env = {
        "ENDPOINT": endpoint,
        "ACCESS_KEY": access_key,
        "SECRET_KEY": secret_key,
        "BUCKET": bucket,
        "KEY": "mlenv-probe.txt",
    }
    return run_python(host, interpreter, S3_PROBE, env)


HTTP_REQUEST = """
import base64, json, os, ssl, urllib.error, urllib.request
class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None
request = urllib.request.Request(os.environ["URL"], headers=json.loads(os.environ["HEADERS"]))
if os.environ.get("BASIC_AUTH"):
    token = base64.b64encode(os.environ["BASIC_AUTH"].encode()).decode()
    request.add_header("Authorization", f"Basic {token}")
context = ssl.create_default_context(cafile=os.environ.get("CA_FILE") or None)
opener = urllib.request.build_opener(NoRedirect, urllib.request.HTTPSHandler(context=context))
try:
    with opener.open(request, timeout=15) as response:
        answer = {"status": response.status, "headers": dict(response.headers),
                  "body": response.read(1 << 20).decode(errors="replace")}
except urllib.error.HTTPError as err:
    answer = {"status": err.code, "headers": dict(err.headers)}
except (urllib.error.URLError, ConnectionError, TimeoutError) as err:
    answer = {"status": 0, "headers": {}, "error": str(err)}
print(json.dumps(answer))
"""


def http_request(
    host: Any,
    url: str,
    *,
    basic_auth: str = "",
    headers: dict[str, str] | None = None,
    ca_file: str = "",
    interpreter: str = "python3",
) -> dict[str, Any]:
    """A GET from the host: {status, headers[, body][, error]}; status 0 when nothing answers. Redirects are
    not followed, and credentials travel in the environment, never on the command line."""
    env = {"URL": url, "HEADERS": json.dumps(headers or {}), "BASIC_AUTH": basic_auth, "CA_FILE": ca_file}
    return run_python(host, interpreter, HTTP_REQUEST, env)


def http_status(host: Any, url: str, **options: Any) -> int:
    return int(http_request(host, url, **options)["status"])
