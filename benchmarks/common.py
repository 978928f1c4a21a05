"""What every benchmark records beside its figures: when, where, with which versions."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks/results"


def machine() -> dict[str, object]:
    meminfo = Path("/proc/meminfo").read_text().split()
    return {
        "cpus": os.cpu_count(),
        "memory_mib": int(meminfo[meminfo.index("MemTotal:") + 1]) // 1024,
        "python": platform.python_version(),
        "kernel": platform.release(),
    }


def tool_version(*argv: str) -> str:
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    return (result.stdout or result.stderr).strip().splitlines()[0] if result.returncode == 0 else "unknown"


@contextmanager
def timed(figures: dict[str, float], key: str) -> Iterator[None]:
    started = time.monotonic()
    yield
    figures[key] = round(time.monotonic() - started, 2)


def save(name: str, payload: dict[str, object]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    record = {"recorded_at": datetime.now(UTC).isoformat(timespec="seconds"), "machine": machine(), **payload}
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(record, indent=2) + "\n")
    return path


def hyperfine(command: str, *, runs: int, env: dict[str, str], cwd: Path | None = None) -> dict[str, float]:
    """Mean, min and max seconds of a command over `runs` runs after warm-up (hyperfine, Debian package)."""
    import shutil
    import tempfile

    if shutil.which("hyperfine") is None:
        raise SystemExit("hyperfine is missing: apt-get install hyperfine (scripts/install-system-packages)")
    with tempfile.NamedTemporaryFile(suffix=".json") as export:
        subprocess.run(
            ["hyperfine", "--warmup", "1", "--runs", str(runs), "--export-json", export.name, command],
            env=env,
            cwd=cwd,
            check=True,
            capture_output=True,
        )
        result = json.loads(Path(export.name).read_text())["results"][0]
    return {key: round(result[key], 3) for key in ("mean", "min", "max")}


def report(name: str, payload: dict[str, object]) -> int:
    """Save the figures as benchmarks/results/<name>.json, print them and where they went."""
    path = save(name, payload)
    print(json.dumps(payload.get("figures", payload), indent=2))
    print(f"saved to {path.relative_to(ROOT)}")
    return 0
