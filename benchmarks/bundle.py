"""A cold converge of the whole local platform with and without an offline bundle, side by side in one run.

    python -m benchmarks.bundle [--bundle DIR]

1. `mlenv bundle` into DIR (a fresh folder unless given), seconds and MB;
2. baseline: a new host on a Podman network with a route out, converged from Debian's mirror and PyPI as
   `mlenv up` does (site.yml through mlenv's converge), seconds;
3. a new host on an internal network that reaches only a server of the bundle, converged from it, seconds.

Both hosts are made from the same image and converged by the same code (tests/helpers/offline.py); each is
removed after. Prints the figures and saves them to benchmarks/results/bundle.json. Traffic goes to the test
hosts' own networks, and for the baseline and the bundle to the registries this machine is allowed to reach.
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
from pathlib import Path

from benchmarks.common import report, timed
from tests.helpers.offline import Site


def cold_converge(site: Site, figures: dict[str, float], key: str) -> None:
    site.start()
    try:
        with tempfile.TemporaryDirectory(prefix="mlenv-bench-state-") as state:
            result, seconds = site.converge(Path(state))
            if not result.ok:
                raise SystemExit(f"{key}: the converge failed, log: {result.log}")
            figures[key] = round(seconds, 1)
    finally:
        site.remove()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, help="an existing bundle to use (skips making one)")
    args = parser.parse_args()
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="mlenv-bench-bundle-") as scratch:
        bundle = args.bundle or Path(scratch) / "bundle"
        if args.bundle is None:
            with timed(figures, "mlenv bundle (s)"):
                subprocess.run(["mlenv", "bundle", str(bundle)], check=True, capture_output=True)
        size = sum(path.stat().st_size for path in bundle.rglob("*") if path.is_file())
        figures["bundle (MB)"] = round(size / 1e6)
        cold_converge(Site("mlenv-bench-online", None), figures, "cold converge, internet (s)")
        cold_converge(Site("mlenv-bench-offline", bundle), figures, "cold converge, bundle only (s)")
    figures["bundle speed-up"] = round(
        figures["cold converge, internet (s)"] / figures["cold converge, bundle only (s)"], 2
    )
    return report("bundle", {"figures": figures})


if __name__ == "__main__":
    raise SystemExit(main())
