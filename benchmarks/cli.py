"""Latency of the `mlenv` command: `--help` (start-up cost) and `status` on a running environment.

    python -m benchmarks.cli [--runs 10]      # MLENV_CONFIG / MLENV_STATE_DIR select the environment

Uses hyperfine (Debian package) with warm-up runs; prints and saves mean/min/max seconds to
benchmarks/results/cli.json. Goals: --help <= 0.3 s, status <= 2 s on the running local stack.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.common import ROOT, save

COMMANDS = {"help": "mlenv --help", "status": "mlenv status"}


def measure(env: dict[str, str], runs: int = 10) -> dict[str, dict[str, float]]:
    if shutil.which("hyperfine") is None:
        raise SystemExit("hyperfine is missing: apt-get install hyperfine (scripts/install-system-packages)")
    figures = {}
    for name, command in COMMANDS.items():
        with tempfile.NamedTemporaryFile(suffix=".json") as export:
            subprocess.run(
                ["hyperfine", "--warmup", "2", "--runs", str(runs), "--export-json", export.name, command],
                env=env,
                check=True,
                capture_output=True,
            )
            result = json.loads(Path(export.name).read_text())["results"][0]
        figures[f"{name}_s"] = {key: round(result[key], 3) for key in ("mean", "min", "max")}
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    figures = measure(env, args.runs)
    path = save("cli", {"figures": figures})
    print(json.dumps(figures, indent=2))
    print(f"saved to {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
