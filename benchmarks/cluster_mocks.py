"""Time of a mocked build of pulumi/cluster (a fresh process: imports included), GKE and EKS.

    python -m benchmarks.cluster_mocks [--runs 5]

Goal: <= 10 s. Prints and saves to benchmarks/results/cluster-mocks.json (hyperfine).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.common import ROOT, save

BUILD = "from tests.unit.infra.test_cluster_program import {config}, build; build({config})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    figures = {}
    for config in ("TWO_POOLS", "EKS"):
        command = f'{sys.executable} -c "{BUILD.format(config=config)}"'
        with tempfile.NamedTemporaryFile(suffix=".json") as export:
            subprocess.run(
                ["hyperfine", "--warmup", "1", "--runs", str(args.runs), "--export-json", export.name, command],
                cwd=ROOT,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
                check=True,
                capture_output=True,
            )
            result = json.loads(Path(export.name).read_text())["results"][0]
        figures[f"{config.lower()}_s"] = {key: round(result[key], 2) for key in ("mean", "min", "max")}
    path = save("cluster-mocks", {"figures": figures})
    print(json.dumps(figures, indent=2))
    print(f"saved to {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
