"""A virtualenv with the starter ML project's locked requirements, as a CI job or a laptop installs
them (pip --require-hashes -r requirements.lock).

Cached by a hash of the lock and the Python build (like the project's own venv), so a
run on a machine that built it before reuses it.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

TEMPLATE = Path(__file__).resolve().parents[2] / "templates/ml-project"
PIP_TIMEOUT_S = 15 * 60


def template_python() -> Path:
    requirements = TEMPLATE / "requirements.lock"
    key = hashlib.sha256(requirements.read_bytes() + sys.version.encode()).hexdigest()[:16]
    cache = Path(os.environ.get("MLENV_CACHE_DIR", Path.home() / ".cache/mlenv"))
    venv = cache / f"template-venv-{key}"
    python = venv / "bin/python"
    if not (venv / ".complete").is_file():
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", "--require-hashes", "-r", str(requirements)],
            check=True,
            timeout=PIP_TIMEOUT_S,
        )
        (venv / ".complete").touch()
    return python
