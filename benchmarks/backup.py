"""What `mlenv backup` and `mlenv restore` cost on a running local environment, beside a baseline in
the same run: the bare dumps typed by hand on the host (`pg_dump -Fc` of every database and a tar of
Label Studio's media, no encryption, no buckets, no checks).

    MLENV_CONFIG=… MLENV_STATE_DIR=… python -m benchmarks.backup --host mlenv-local [--no-restore]

1. baseline: the dumps inside the host (podman exec), seconds;
2. `mlenv backup` to a fresh folder (the writers stopped for the dumps, every bucket's versions, age), seconds and MB;
3. `mlenv restore --check` (every part checked and decrypted), seconds;
4. `mlenv restore --yes` onto the same running environment (no host to make again), seconds.

Prints the figures and saves them to benchmarks/results/backup.json. Only the environment's own container and
its proxy on loopback are contacted; step 4 replaces the environment's data by the backup just made.
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
from pathlib import Path

from benchmarks.common import report, timed

BASELINE = (
    "set -e; mkdir -p /tmp/bench && chown postgres /tmp/bench; "
    "for db in $(su postgres -c \"psql -Atc 'select datname from pg_database where not datistemplate'\"); do "
    'su postgres -c "pg_dump -Fc -f /tmp/bench/$db.pgc $db"; done; '
    "tar czf /tmp/bench/media.tar.gz -C /var/lib/mlenv-label-studio media; du -sb /tmp/bench | cut -f1; rm -rf /tmp/bench"
)


def mlenv(*args: str) -> str:
    done = subprocess.run(["mlenv", *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"mlenv {' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-2000:]}")
    return done.stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="mlenv-local", help="The environment's container.")
    parser.add_argument("--no-restore", action="store_true", help="Leave out step 4.")
    args = parser.parse_args()
    figures: dict[str, float] = {}
    with timed(figures, "baseline_dumps_s"):
        raw = subprocess.run(["podman", "exec", args.host, "sh", "-c", BASELINE], capture_output=True, text=True)
    if raw.returncode != 0:
        raise SystemExit(f"the baseline failed: {raw.stderr[-2000:]}")
    figures["baseline_dumps_mb"] = round(int(raw.stdout.split()[-1]) / 1e6, 2)
    with tempfile.TemporaryDirectory() as work:
        folder, key = Path(work) / "backups", Path(work) / "bench.agekey"
        with timed(figures, "backup_s"):
            mlenv("backup", "--to", str(folder), "--key", str(key))
        (made,) = list(folder.iterdir())
        figures["backup_mb"] = round(sum(p.stat().st_size for p in made.rglob("*") if p.is_file()) / 1e6, 2)
        with timed(figures, "restore_check_s"):
            mlenv("restore", "--check", "--to", str(folder), "--key", str(key))
        if not args.no_restore:
            with timed(figures, "restore_onto_running_s"):
                mlenv("restore", "--yes", "--to", str(folder), "--key", str(key))
    figures["backup_vs_baseline"] = round(figures["backup_s"] / max(figures["baseline_dumps_s"], 0.01), 1)
    return report("backup", {"figures": figures})


if __name__ == "__main__":
    raise SystemExit(main())
