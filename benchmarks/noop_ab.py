"""No-op re-converge of this checkout against a baseline commit, interleaved on two live stacks.

    python -m benchmarks.noop_ab --baseline 75e3aaa [--rounds 4]

A no-op `mlenv up` takes about 30 s here and varies by several seconds from run to run, more than
the differences worth knowing. So both stacks are brought up once (each by its own code: a git
worktree of the baseline), then their no-op runs alternate, baseline first in each round, and the
figures are the medians with the spread. Saved to benchmarks/results/noop-ab.json. Only loopback
and the benchmark's own containers are contacted; both are purged at the end.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.common import ROOT, save
from benchmarks.stack import mlenv_up
from mlenv.hostimage import ensure_image, podman_env

STACKS = {"baseline": ("mlenv-bench-ab-base", 28643), "head": ("mlenv-bench-ab-head", 28543)}


def stack_env(tree: Path, name: str, port: int, state: Path) -> dict[str, str]:
    state.mkdir(parents=True, exist_ok=True)
    config = state / "mlenv.yaml"
    config.write_text(f"environment: {name}\ntls:\n  https_port: {port}\nlocal:\n  host_name: {name}\n")
    return {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(tree / "src"),
        "MLENV_PROJECT_DIR": str(tree),
        "ANSIBLE_CONFIG": str(tree / "ansible.cfg"),
        "MLENV_STATE_DIR": str(state),
        "MLENV_CONFIG": str(config),
        "CONTAINERS_CONF": podman_env(ROOT)["CONTAINERS_CONF"],
    }


def spread(runs: list[float]) -> dict[str, object]:
    return {"runs_s": runs, "median_s": round(statistics.median(runs), 1), "min_s": min(runs), "max_s": max(runs)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", required=True, help="the commit to compare with (e.g. the previous one)")
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()

    ensure_image(ROOT)
    work = Path(tempfile.mkdtemp(prefix="mlenv-bench-ab-"))
    baseline_tree = work / "baseline"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(baseline_tree), args.baseline],
                   check=True, capture_output=True)  # fmt: skip
    trees = {"baseline": baseline_tree, "head": ROOT}
    envs = {kind: stack_env(trees[kind], name, port, work / kind) for kind, (name, port) in STACKS.items()}
    cold: dict[str, float] = {}
    noops: dict[str, list[float]] = {kind: [] for kind in STACKS}
    try:
        for kind, env in envs.items():
            subprocess.run(["podman", "rm", "--force", STACKS[kind][0]], env=env, capture_output=True, check=False)
            cold[kind], _ = mlenv_up(env)
        for _ in range(max(1, args.rounds)):
            for kind, env in envs.items():
                seconds, output = mlenv_up(env)
                if ", 0 changes;" not in output:
                    raise RuntimeError(f"the {kind} no-op run changed something:\n{output[-2000:]}")
                noops[kind].append(seconds)
    finally:
        for kind, env in envs.items():
            subprocess.run(["mlenv", "down", "--purge"], env=env, input=f"{STACKS[kind][0]}\n", capture_output=True,
                           text=True, check=False)  # fmt: skip
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(baseline_tree)],
                       capture_output=True, check=False)  # fmt: skip
    head_commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                                 text=True, check=True).stdout.strip()  # fmt: skip
    figures = {
        "baseline": {"commit": args.baseline, "cold_converge_s": cold["baseline"], "noop": spread(noops["baseline"])},
        "head": {
            "commit": f"{head_commit} + work tree",
            "cold_converge_s": cold["head"],
            "noop": spread(noops["head"]),
        },
    }
    figures["noop_median_delta_s"] = round(
        figures["head"]["noop"]["median_s"] - figures["baseline"]["noop"]["median_s"],
        1,  # type: ignore[index]
    )
    path = save("noop-ab", {"rounds": args.rounds, "order": "baseline then head, each round", "figures": figures})
    for kind in STACKS:
        found = figures[kind]
        print(
            f"{kind:>8} {found['commit']}: cold {found['cold_converge_s']} s, no-op median "  # type: ignore[index]
            f"{found['noop']['median_s']} s (min {found['noop']['min_s']}, max {found['noop']['max_s']})"
        )  # type: ignore[index]
    print(f"no-op median, head minus baseline: {figures['noop_median_delta_s']} s; saved to {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
