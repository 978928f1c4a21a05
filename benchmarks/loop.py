"""The ML loop, measured on a fresh local stack of its own.

    python -m benchmarks.loop [--every 20] [--webhooks 200] [--per-minute 200]

1. threshold → served: the annotation that crosses `every` (through Label Studio's API) until the
   model server answers with the new production version through the proxy; beside it, what that
   time is made of (the run's own training time, from its unit) — the rest is the loop's overhead;
2. webhook latency: `--webhooks` annotation webhooks to the trigger service through the proxy, paced
   at `--per-minute`, p50/p95; beside them, the same number of GET /health on the same path and pace
   (the proxy and the connection alone);
3. memory added: resident sets of the loop's processes (trigger service, model server, follower)
   against the rest of the stack's.

Saves benchmarks/results/loop.json. Only loopback and the benchmark's own container are contacted.
"""

from __future__ import annotations

import argparse
import json
import os
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from base64 import b64encode
from pathlib import Path

import yaml

from benchmarks.common import ROOT, report
from mlenv.clients import names_resolve_to
from mlenv.hostimage import ensure_image, podman_env

HOST = "mlenv-bench-loop"
HTTPS_PORT = 28543
DOMAIN = "mlenv.localhost"
TITLE, MODEL = "tickets benchmark", "tickets-bench"
TEMPLATE = ROOT / "templates/ml-project"
LOOP_USERS = {"mlenv-loop": "trigger service", "mlenv-serve": "model server and follower"}


class Client:
    def __init__(self, state: Path) -> None:
        self.state = state
        self.context = ssl.create_default_context(cafile=str(state / "secrets/ca/ca.crt"))

    def secret(self, relative: str) -> str:
        return (self.state / "secrets" / relative).read_text().split()[0]

    def call(self, site: str, path: str, *, method: str = "GET", body: object = None,
             headers: dict[str, str] | None = None) -> tuple[int, object]:  # fmt: skip
        request = urllib.request.Request(
            f"https://{site}.{DOMAIN}:{HTTPS_PORT}{path}", method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Content-Type": "application/json", **(headers or {})},
        )  # fmt: skip
        try:
            with urllib.request.urlopen(request, timeout=60, context=self.context) as answer:
                text = answer.read().decode()
                return answer.status, json.loads(text) if text[:1] in "{[" else text
        except urllib.error.HTTPError as err:
            return err.code, err.read().decode()[:300]

    def labels(self, method: str, path: str, body: object = None) -> object:
        status, answer = self.call("labels", f"/api/{path}", method=method, body=body,
                                   headers={"Authorization": f"Token {self.secret('label_studio/api_token')}"})  # fmt: skip
        assert status in {200, 201}, (status, answer)
        return answer

    def loop(self, path: str) -> object:
        status, answer = self.call(
            "loop", path, headers={"Authorization": f"Bearer {self.secret('ml_loop/api_token')}"}
        )
        return answer if status == 200 else None

    def served(self) -> str | None:
        auth = b64encode(f"mlenv:{self.secret('model_server/password')}".encode()).decode()
        status, answer = self.call("models", f"/v2/models/{MODEL}", headers={"Authorization": f"Basic {auth}"})
        return (answer.get("versions") or [None])[0] if status == 200 and isinstance(answer, dict) else None


def podman(*args: str) -> str:
    return subprocess.run(["podman", *args], env=podman_env(ROOT), capture_output=True, text=True, check=True).stdout


def rss_by_user() -> dict[str, float]:
    found: dict[str, float] = {}
    for line in podman("exec", HOST, "ps", "-eo", "user:20=,rss=").splitlines():
        user, rss = line.split()
        found[user] = found.get(user, 0.0) + int(rss) / 1024
    return {user: round(mib, 1) for user, mib in found.items()}


def wait(what: str, check, timeout: float = 300, pause: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(pause)
    raise RuntimeError(f"{what}: not within {timeout} s")


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {"n": len(ordered), "p50_ms": round(statistics.median(ordered), 1),
            "p95_ms": round(ordered[max(0, int(len(ordered) * 0.95) - 1)], 1), "max_ms": round(ordered[-1], 1)}  # fmt: skip


def threshold_to_served(client: Client, every: int) -> dict[str, object]:
    config = (TEMPLATE / "label_config.xml").read_text()
    project = client.labels("POST", "projects", {"title": TITLE, "label_config": config})
    rows = [json.loads(line) for line in (TEMPLATE / "data/sample.jsonl").read_text().splitlines()]
    client.labels("POST", f"projects/{project['id']}/import", [{"text": row["text"]} for row in rows])
    label_of = {row["text"]: row["label"] for row in rows}
    tasks = sorted(
        client.labels("GET", f"tasks?project={project['id']}&page_size=1000")["tasks"], key=lambda t: t["id"]
    )
    wait(
        "the service connecting the project",
        lambda: any(
            found["project_id"] == project["id"] for found in (client.loop("/api/projects") or {}).get("projects", [])
        ),
    )

    made: list[int] = []

    def annotate(task: dict) -> float:
        result = [{"from_name": "label", "to_name": "text", "type": "choices",
                   "value": {"choices": [label_of[task["data"]["text"]]]}}]  # fmt: skip
        started = time.perf_counter()
        made.append(client.labels("POST", f"tasks/{task['id']}/annotations", {"result": result})["id"])
        return (time.perf_counter() - started) * 1000

    annotation_ms = [annotate(task) for task in tasks[: every - 1]]
    crossed = time.monotonic()
    annotation_ms.append(annotate(tasks[every - 1]))
    runs = wait("a finished run", lambda: [run for run in (client.loop("/api/runs") or {}).get("runs", [])
                                          if run["state"] in {"succeeded", "failed"}])  # fmt: skip
    finished = time.monotonic()
    run = runs[0]
    version = (run.get("result") or {}).get("version")
    served_at = wait("the new version served", lambda: client.served() == version and time.monotonic(), pause=0.2)
    training = (time.mktime(time.strptime(run["finished_at"][:19], "%Y-%m-%dT%H:%M:%S"))
                - time.mktime(time.strptime(run["started_at"][:19], "%Y-%m-%dT%H:%M:%S")))  # fmt: skip
    return {
        "run": run["id"], "state": run["state"], "decision": (run.get("result") or {}).get("decision"),
        "threshold_to_served_s": round(served_at - crossed, 1),
        "threshold_to_run_finished_s": round(finished - crossed, 1),
        "run_unit_seconds": training,
        "finished_to_served_s": round(served_at - finished, 1),
        "annotation_api_ms": percentiles(annotation_ms),
        "project_id": project["id"], "annotation_id": made[0],
    }  # fmt: skip


def webhook_latency(client: Client, project_id: int, annotation: int, count: int, per_minute: int) -> dict[str, object]:
    """Updates of an annotation that change nothing: each is stored and counted, and the snapshots
    they make are the version that exists (no run)."""
    secret = client.secret("ml_loop/webhook_secret")
    event = {"action": "ANNOTATION_UPDATED", "project": {"id": project_id}, "annotation": {"id": annotation}}
    pace = 60 / per_minute
    webhooks, health, errors = [], [], 0
    for _ in range(count):
        started = time.perf_counter()
        status, _ = client.call("loop", "/webhooks/label-studio", method="POST", body=event,
                                headers={"X-Mlenv-Webhook-Secret": secret})  # fmt: skip
        webhooks.append((time.perf_counter() - started) * 1000)
        errors += status != 202
        started = time.perf_counter()
        client.call("loop", "/health")
        health.append((time.perf_counter() - started) * 1000)
        time.sleep(max(0.0, pace - (webhooks[-1] + health[-1]) / 1000))
    return {"per_minute": per_minute, "webhook": percentiles(webhooks), "errors": errors,
            "baseline_health": percentiles(health)}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--every", type=int, default=20)
    parser.add_argument("--webhooks", type=int, default=200)
    parser.add_argument("--per-minute", type=int, default=200)
    args = parser.parse_args()

    ensure_image(ROOT)
    state = Path(tempfile.mkdtemp(prefix="mlenv-bench-loop-"))
    config = state / "mlenv.yaml"
    config.write_text(yaml.safe_dump({
        "environment": "bench-loop", "tls": {"https_port": HTTPS_PORT}, "local": {"host_name": HOST},
        "loop": {"projects": [{"title": TITLE, "dataset": MODEL, "model": MODEL, "every": args.every}]},
    }))  # fmt: skip
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "MLENV_STATE_DIR": str(state), "MLENV_CONFIG": str(config),
           "CONTAINERS_CONF": podman_env(ROOT)["CONTAINERS_CONF"]}  # fmt: skip
    subprocess.run(["podman", "rm", "--force", HOST], env=env, capture_output=True, check=False)
    figures: dict[str, object] = {}
    try:
        up = subprocess.run(["mlenv", "up"], env=env, capture_output=True, text=True, check=False)
        if up.returncode != 0:
            raise RuntimeError(f"mlenv up failed:\n{up.stdout[-3000:]}")
        client = Client(state)
        with names_resolve_to(DOMAIN, "127.0.0.1"):
            rss = rss_by_user()
            figures["memory_idle_mib"] = {
                "loop_processes": {LOOP_USERS[user]: rss.get(user, 0.0) for user in LOOP_USERS},
                "loop_total": round(sum(rss.get(user, 0.0) for user in LOOP_USERS), 1),
                "rest_of_stack": round(sum(mib for user, mib in rss.items() if user not in LOOP_USERS), 1),
            }
            figures["loop"] = threshold_to_served(client, args.every)
            loop = figures["loop"]
            figures["webhooks"] = webhook_latency(client, loop["project_id"], loop["annotation_id"], args.webhooks,
                                                  args.per_minute)  # fmt: skip
            rss = rss_by_user()
            figures["memory_after_mib"] = {"loop_total": round(sum(rss.get(user, 0.0) for user in LOOP_USERS), 1),
                                           "rest_of_stack": round(sum(mib for user, mib in rss.items()
                                                                      if user not in LOOP_USERS), 1)}  # fmt: skip
    finally:
        subprocess.run(["mlenv", "down", "--purge"], env=env, input=f"{HOST}\n", capture_output=True, text=True)
    return report("loop", {"goals": {"threshold_to_served_s": 120, "webhook_p95_ms": 50}, "figures": figures})


if __name__ == "__main__":
    raise SystemExit(main())
