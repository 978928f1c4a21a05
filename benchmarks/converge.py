"""Time a role on a fresh test host: create → cold converge → no-op re-converge.

    python benchmarks/converge.py --role postgresql [--rebuild-image]

Prints the figures and saves them to benchmarks/results/converge-<role>.json. The
re-converge is the cost of a run that changes nothing (an operator's routine run).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from benchmarks.common import ROOT, save, timed, tool_version
from mlenv.hostimage import ensure_image


class StepFailed(RuntimeError):
    pass


def molecule(step: str, role: str, scenario: str, env: dict[str, str]) -> str:
    result = subprocess.run(
        ["molecule", step, "--scenario-name", scenario],
        cwd=ROOT / "ansible/roles" / role,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise StepFailed(f"molecule {step} failed:\n{(result.stdout + result.stderr)[-3000:]}")
    return result.stdout + result.stderr


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--role", default="postgresql")
    parser.add_argument("--scenario", default="default")
    parser.add_argument("--rebuild-image", action="store_true", help="also time a forced rebuild of the host image")
    args = parser.parse_args()

    env = dict(os.environ)
    env.setdefault("CONTAINERS_CONF", str(ROOT / ".config/containers/containers.conf"))
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    env["NO_COLOR"] = "1"
    figures: dict[str, float] = {}
    with timed(figures, "image_s"):
        image = ensure_image(ROOT, force=args.rebuild_image)
    if not args.rebuild_image:
        figures.pop("image_s")
    env["MLENV_HOST_IMAGE"] = image

    molecule("destroy", args.role, args.scenario, env)
    try:
        with timed(figures, "create_s"):
            molecule("create", args.role, args.scenario, env)
        with timed(figures, "converge_s"):
            molecule("converge", args.role, args.scenario, env)
        with timed(figures, "reconverge_s"):
            molecule("converge", args.role, args.scenario, env)
    finally:
        with timed(figures, "destroy_s"):
            molecule("destroy", args.role, args.scenario, env)

    figures["reconverge_to_converge_ratio"] = round(figures["reconverge_s"] / figures["converge_s"], 3)
    path = save(
        f"converge-{args.role}",
        {
            "role": args.role,
            "scenario": args.scenario,
            "connection": "containers.podman.podman",
            "image": image,
            "ansible": tool_version("ansible", "--version"),
            "figures": figures,
        },
    )
    for key, value in figures.items():
        print(f"{key:>30}: {value}")
    print(f"saved to {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
