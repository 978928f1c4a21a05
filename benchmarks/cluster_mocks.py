"""Time of a mocked build of pulumi/cluster (a fresh process: imports included), GKE and EKS.

    python -m benchmarks.cluster_mocks [--runs 5]

Goal: <= 10 s. Prints and saves to benchmarks/results/cluster-mocks.json (hyperfine).
"""

from __future__ import annotations

import argparse
import os
import sys

from benchmarks.common import ROOT, hyperfine, report

BUILD = "from tests.unit.infra.test_cluster_program import {config}, build; build({config})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    figures = {
        f"{config.lower()}_s": hyperfine(
            f'{sys.executable} -c "{BUILD.format(config=config)}"', runs=args.runs, env=env, cwd=ROOT
        )
        for config in ("TWO_POOLS", "EKS")
    }
    return report("cluster-mocks", {"figures": figures})


if __name__ == "__main__":
    raise SystemExit(main())
