"""One mlenv command that changes an environment at a time (a second one is refused, never interleaved).

The lock is an flock on a file in the state folder: the kernel drops it when the holder
exits, even when killed, so an interrupted run never leaves a stale lock behind.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mlenv.errors import UserError


class EnvironmentBusy(UserError):
    pass


@contextmanager
def environment_lock(state: Path, command: str) -> Iterator[None]:
    state.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = state / "mlenv.lock"
    handle = path.open("a+")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = _holder(handle.read())
            raise EnvironmentBusy(
                f"another `mlenv {holder.get('command', '?')}` (pid {holder.get('pid', '?')}, started "
                f"{holder.get('started', '?')}) is changing this environment ({state}); wait for it to finish"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps({"pid": os.getpid(), "command": command, "started": time.strftime("%H:%M:%S")}))
        handle.flush()
        yield
    finally:
        handle.close()


def _holder(text: str) -> dict[str, object]:
    try:
        found = json.loads(text)
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}
