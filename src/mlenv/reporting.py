"""Where the layers below the CLI send progress: an interface, so that nothing imports the CLI's
application (data and calls flow down; the console is handed down as this)."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Protocol


class Reporter(Protocol):
    verbose: bool

    def info(self, message: str) -> None: ...

    def success(self, message: str) -> None: ...

    def warning(self, message: str) -> None: ...

    def error(self, message: str) -> None: ...

    def status(self, message: str) -> AbstractContextManager[object]:
        """A spinner whose text `update(text)` changes (None where there is no terminal)."""
        ...

    def raw(self, line: str) -> None:
        """A line of another tool's output, as it is (no markup)."""
        ...
