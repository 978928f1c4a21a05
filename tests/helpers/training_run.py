"""One training run of the ML loop on a scenario's host, as the trigger service starts it: a dataset
version of the starter project's sample put in the bucket, the job's file written as the service,
its `mlenv-train@<id>` unit started as the service (polkit lets it), and the run's result read back."""

from __future__ import annotations

import base64
import json
import shlex
from pathlib import Path
from typing import Any

from tests.helpers.hostpython import run_python

SAMPLE = Path(__file__).resolve().parents[2] / "templates/ml-project/data/sample.jsonl"
VERSION = "0123456789abcdef"
LOOP_PYTHON = "/opt/mlenv/loop/venv/bin/python"

PUT_VERSION = """
import base64, hashlib, json, os, boto3
rows = [json.loads(line) for line in base64.b64decode(os.environ["SAMPLE"]).decode().splitlines()]
records = [{"id": index + 1, "data": {"text": row["text"]}, "split": "test" if index % 5 == 0 else "train",
            "annotations": [{"id": index + 1, "result": [{"from_name": "label", "to_name": "text", "type": "choices",
                                                          "value": {"choices": [row["label"]]}}]}]}
           for index, row in enumerate(rows)]
data = "".join(json.dumps(record, sort_keys=True) + "\\n" for record in records).encode()
version = os.environ["VERSION"]
manifest = {"schema": 1, "dataset": "tickets", "version": version, "source": {"project_id": 1},
            "counts": {"tasks": len(records), "annotations": len(records)},
            "files": [{"name": "tasks.jsonl", "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}]}
s3 = boto3.client("s3", endpoint_url=os.environ["ENDPOINT"], region_name="us-east-1")
s3.put_object(Bucket="datasets", Key=f"tickets/versions/{version}/tasks.jsonl", Body=data)
s3.put_object(Bucket="datasets", Key=f"tickets/versions/{version}/manifest.json", Body=json.dumps(manifest).encode())
print(json.dumps(version))
"""


def put_sample_version(host: Any, *, endpoint: str, access_key: str, secret_key: str, ca_bundle: str = "") -> str:
    """The sample as dataset version VERSION of `tickets`, written as the loop's S3 identity."""
    env = {"AWS_ACCESS_KEY_ID": access_key, "AWS_SECRET_ACCESS_KEY": secret_key, "ENDPOINT": endpoint,
           "VERSION": VERSION, "SAMPLE": base64.b64encode(SAMPLE.read_bytes()).decode()}  # fmt: skip
    if ca_bundle:
        env["AWS_CA_BUNDLE"] = ca_bundle
    return run_python(host, LOOP_PYTHON, PUT_VERSION, env)


def train(host: Any, run_id: str) -> dict[str, Any]:
    """Start the run as the trigger service would and return its result.json; fails with its journal."""
    job = {"id": run_id, "dataset": "tickets", "version": VERSION, "model": "tickets", "trigger": "test"}
    write = f"import json, sys; json.dump(json.loads(sys.argv[1]), open('/var/lib/mlenv-loop/runs/{run_id}.json', 'w'))"
    host.check_output(f"runuser -u mlenv-loop -- python3 -c {shlex.quote(write)} {shlex.quote(json.dumps(job))}")
    host.check_output(f"runuser -u mlenv-loop -- systemctl --no-ask-password start mlenv-train@{run_id}.service")
    state = host.service(f"mlenv-train@{run_id}").systemd_properties
    assert (state["ActiveState"], state["Result"]) == ("active", "success"), host.run(
        f"journalctl -u mlenv-train@{run_id} --no-pager -n 40"
    ).stdout
    return json.loads(host.file(f"/var/lib/mlenv-train/{run_id}/result.json").content_string)
