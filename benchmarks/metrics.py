"""What the metrics cost a running local environment, beside what the rest of its services use in the
same run: the resident memory of Prometheus and its exporters (the metrics role's units and MLflow's
metrics exporter) next to the platform's other services, and how long each scrape takes.

    python -m benchmarks.metrics [--host mlenv-local] [--samples 5]

Memory is the sum of the resident set of every process of each systemd unit on the host (ps's `unit`
column), taken --samples times 2 s apart; the median is kept. Shared pages count once per process, on
both sides alike (PostgreSQL's shared buffers weigh on the baseline). Scrape times are Prometheus's own
`scrape_duration_seconds`. Saves benchmarks/results/metrics.json. Nothing leaves the host's loopback.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import time
from collections import defaultdict
from pathlib import Path

from benchmarks.common import report
from mlenv.hostimage import podman_env

ROOT = Path(__file__).resolve().parents[1]
METRICS_UNITS = {
    "prometheus.service",
    "prometheus-node-exporter.service",
    "prometheus-nginx-exporter.service",
    "prometheus-postgres-exporter.service",
    "mlenv-mlflow-metrics.service",
}
# The platform's own services (the baseline): what `mlenv up` runs besides the metrics.
PLATFORM_PREFIXES = ("mlenv-", "postgresql@", "nginx.service")


def on_host(host: str, *command: str) -> str:
    return subprocess.run(
        ["podman", "exec", host, *command], env=podman_env(ROOT), capture_output=True, text=True, check=True
    ).stdout


def rss_by_unit(host: str) -> dict[str, float]:
    found: dict[str, float] = defaultdict(float)
    for line in on_host(host, "ps", "-eo", "rss=,unit=").splitlines():
        rss, _, unit = line.strip().partition(" ")
        found[unit.strip()] += int(rss) / 1024
    return found


def scrape_seconds(host: str) -> dict[str, float]:
    source = (
        "import json, urllib.request\n"
        "url = 'http://127.0.0.1:9090/api/v1/query?query=scrape_duration_seconds'\n"
        "print(json.dumps(json.load(urllib.request.urlopen(url))['data']['result']))\n"
    )
    result = json.loads(on_host(host, "python3", "-c", source))
    return {one["metric"]["job"]: round(float(one["value"][1]) * 1000, 1) for one in result}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="mlenv-local")
    parser.add_argument("--samples", type=int, default=5)
    args = parser.parse_args()
    samples = []
    for index in range(args.samples):
        if index:
            time.sleep(2)
        samples.append(rss_by_unit(args.host))
    units = sorted({unit for sample in samples for unit in sample})
    median = {unit: round(statistics.median(sample.get(unit, 0.0) for sample in samples), 1) for unit in units}
    metrics = {unit: median[unit] for unit in units if unit in METRICS_UNITS}
    platform = {
        unit: median[unit] for unit in units if unit not in METRICS_UNITS and unit.startswith(PLATFORM_PREFIXES)
    }
    figures = {
        "metrics, RSS MiB": round(sum(metrics.values()), 1),
        "baseline: the platform's other services, RSS MiB": round(sum(platform.values()), 1),
        "metrics share of the two": round(sum(metrics.values()) / (sum(metrics.values()) + sum(platform.values())), 3),
        "scrape duration by job, ms": scrape_seconds(args.host),
    }
    return report("metrics", {"figures": figures, "metrics_units": metrics, "platform_units": platform,
                              "host": args.host, "samples": args.samples})  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(main())
