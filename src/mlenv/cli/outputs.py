"""What `mlenv up` left in the state folder for the commands that read it (status, credentials)."""

from __future__ import annotations

import json
from typing import Any

from mlenv.app import Application

NEVER_UP = 3


def read_outputs(app: Application) -> dict[str, Any]:
    path = app.state / "outputs.json"
    if not path.is_file():
        app.abort(f"no outputs in {app.state}: this environment was never brought up (mlenv up)", code=NEVER_UP)
    return json.loads(path.read_text())
