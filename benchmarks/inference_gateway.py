"""What the inference gateway costs a caller: the same V2 requests straight to a stand-in predictor
and through the gateway (basic auth, forwarding), in the same run, one caller and eight at once.

    python -m benchmarks.inference_gateway [--requests 2000]

Prints and saves p50/p95 latency (ms) and requests per second to benchmarks/results/inference-gateway.json.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import statistics
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import ThreadingHTTPServer
from pathlib import Path

from benchmarks.common import report
from tests.unit.test_inference_gateway import PASSWORD, Predictor, start_gateway

BODY = json.dumps(
    {"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["my card was charged twice"]}]}
)


def timings(port: int, count: int, callers: int, auth: bool) -> dict[str, float]:
    headers = {"Content-Type": "application/json"}
    if auth:
        headers["Authorization"] = "Basic " + base64.b64encode(f"mlenv:{PASSWORD}".encode()).decode()
    local = threading.local()

    def one(_: int) -> float:
        if not hasattr(local, "connection"):
            local.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        started = time.perf_counter()
        local.connection.request("POST", "/v2/models/tickets/infer", body=BODY, headers=headers)
        response = local.connection.getresponse()
        response.read()
        assert response.status == 200, response.status
        return time.perf_counter() - started

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=callers) as pool:
        latencies = sorted(pool.map(one, range(count)))
    elapsed = time.perf_counter() - started
    return {
        "p50_ms": round(statistics.median(latencies) * 1000, 2),
        "p95_ms": round(latencies[int(len(latencies) * 0.95) - 1] * 1000, 2),
        "requests_per_s": round(count / elapsed, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()
    predictor = ThreadingHTTPServer(("127.0.0.1", 0), Predictor)
    threading.Thread(target=predictor.serve_forever, daemon=True).start()
    with tempfile.TemporaryDirectory() as folder:
        gateway, port = start_gateway(Path(folder), f"http://127.0.0.1:{predictor.server_address[1]}")
        try:
            figures = {
                f"{path}_{callers}_callers": timings(target, args.requests, callers, auth)
                for callers in (1, 8)
                for path, target, auth in (("direct", predictor.server_address[1], False), ("gateway", port, True))
            }
        finally:
            gateway.terminate()
            gateway.wait(timeout=10)
            predictor.shutdown()
    return report("inference-gateway", {"requests": args.requests, "figures": figures})


if __name__ == "__main__":
    raise SystemExit(main())
