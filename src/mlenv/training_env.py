"""The starter training project's own Python: a virtualenv with its locked requirements, as a CI
job or a laptop installs them (pip --require-hashes -r requirements.lock), for the commands that
run the project's code on this machine (`mlenv report labelling` fits its model).

Cached by a hash of the lock and of this Python's build, so a second use is instant; a venv left
half-made by an interrupted install is made again."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

from mlenv.errors import UserError
from mlenv.paths import project_root

PIP_TIMEOUT_S = 15 * 60


def starter_dir() -> Path:
    return project_root() / "templates/ml-project"


def starter_python() -> Path:
    requirements = starter_dir() / "requirements.lock"
    key = hashlib.sha256(requirements.read_bytes() + sys.version.encode()).hexdigest()[:16]
    cache = Path(os.environ.get("MLENV_CACHE_DIR", Path.home() / ".cache/mlenv"))
    venv = cache / f"template-venv-{key}"
    python = venv / "bin/python"
    if (venv / ".complete").is_file():
        return python
    try:
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True, capture_output=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", "--require-hashes", "-r", str(requirements)],
            check=True,
            capture_output=True,
            text=True,
            timeout=PIP_TIMEOUT_S,
        )
    except subprocess.CalledProcessError as err:
        raise UserError(
            f"could not install the starter project's requirements into {venv}: {(err.stderr or '')[-800:]}"
        ) from None
    except subprocess.TimeoutExpired:
        raise UserError(f"installing the starter project's requirements took over {PIP_TIMEOUT_S} s") from None
    (venv / ".complete").touch()
    return python
