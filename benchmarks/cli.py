"""Latency of the `mlenv` command: `--help` (start-up cost) and `status` on a running environment.

    python -m benchmarks.cli [--runs 10]      # MLENV_CONFIG / MLENV_STATE_DIR select the environment

Prints and saves mean/min/max seconds (hyperfine, after a warm-up run) to benchmarks/results/cli.json.
Goals: --help <= 0.3 s, status <= 2 s on the running local stack.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from benchmarks.common import hyperfine, report

COMMANDS = {"help": "mlenv --help", "status": "mlenv status"}


def measure(env: dict[str, str], runs: int = 10) -> dict[str, dict[str, float]]:
    return {f"{name}_s": hyperfine(command, runs=runs, env=env) for name, command in COMMANDS.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    figures = measure(env, args.runs)
    return report("cli", {"figures": figures})


if __name__ == "__main__":
    raise SystemExit(main())
