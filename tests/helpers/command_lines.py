"""Command lines seen while something runs: this machine's and a podman host's, sampled from `ps`
every few seconds in a background thread (a secret passed as an argument shows there only while
its process lives)."""

from __future__ import annotations

import subprocess
import threading
from types import TracebackType

PS = ["ps", "-eww", "-o", "args="]


class CommandLineSampler:
    def __init__(self, host: str, every_s: float = 2.0) -> None:
        self.host = host
        self.every_s = every_s
        self.lines: set[str] = set()
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="command-line-sampler", daemon=True)

    def _sample(self) -> None:
        for command in (PS, ["podman", "exec", self.host, *PS]):
            found = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
            if found.returncode == 0:
                self.lines.update(found.stdout.splitlines())
        self.samples += 1

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self.every_s)

    def __enter__(self) -> CommandLineSampler:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=60)
