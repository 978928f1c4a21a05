"""Data written before an upgrade and read back after it, through Label Studio's API (on a scenario's host, or
from outside the e2e stack).

`write` makes a project with two tasks and annotates one, and keeps what it wrote in a JSON file; `read`
reads the same things back. Both print one JSON document: what was found, and the server's release. The
address and the administrator's token come from LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import requests

# Where `write` keeps what it wrote, for `read` to compare.
RECORD = Path(os.environ.get("UPGRADE_DATA_RECORD", "/root/mlenv-upgrade-data.json"))
LABELS = """<View><Text name="text" value="$text"/><Choices name="sentiment" toName="text">
<Choice value="positive"/><Choice value="negative"/></Choices></View>"""
CHOICE = {"from_name": "sentiment", "to_name": "text", "type": "choices", "value": {"choices": ["positive"]}}


def call(method: str, path: str, body: object = None) -> object:
    answer = requests.request(
        method,
        os.environ["LABEL_STUDIO_URL"] + path,
        json=body,
        headers={"Authorization": f"Token {os.environ['LABEL_STUDIO_API_KEY']}"},
        timeout=30,
    )
    answer.raise_for_status()
    return answer.json()


def write() -> int:
    project = call("POST", "/api/projects/", {"title": "Written before the upgrade", "label_config": LABELS})
    call("POST", f"/api/projects/{project['id']}/import", [{"text": "works well"}, {"text": "broke at once"}])
    first = min(task["id"] for task in tasks(project["id"]))
    call("POST", f"/api/tasks/{first}/annotations/", {"result": [CHOICE]})
    return project["id"]


def tasks(project: int) -> list[dict]:
    answer = call("GET", f"/api/tasks/?project={project}&page_size=100")
    return answer["tasks"] if isinstance(answer, dict) else answer


def annotations(task: int) -> list[dict]:
    return [annotation["result"][0]["value"] for annotation in call("GET", f"/api/tasks/{task}/annotations/")]


def read(project: int) -> dict:
    found = call("GET", f"/api/projects/{project}/")
    return {
        "project": project,
        "title": found["title"],
        "label_config": found["label_config"],
        "tasks": sorted((task["data"]["text"], annotations(task["id"])) for task in tasks(project)),
    }


if __name__ == "__main__":
    # Written once: a second `write` (a prepare run again) only reads.
    if sys.argv[1] == "write" and not RECORD.exists():
        RECORD.write_text(json.dumps(read(write())))
    written = json.loads(RECORD.read_text())
    found = json.loads(json.dumps(read(written["project"])))
    print(json.dumps({"found": found, "written": written, "server": call("GET", "/api/version/")["release"]}))
