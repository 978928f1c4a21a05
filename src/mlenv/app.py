"""The one console of the CLI: messages, spinners and aborts go through here."""

from __future__ import annotations

import os
import sys
from contextlib import AbstractContextManager, nullcontext
from typing import NoReturn

from rich.console import Console


def interactive() -> bool:
    return sys.stdout.isatty() and not os.environ.get("CI")


class Application:
    def __init__(self, *, verbose: bool = False) -> None:
        self.verbose = verbose
        # Progress lines must reach a log or CI as they happen, not when a buffer fills.
        if hasattr(sys.stdout, "reconfigure"):
            sys.stdout.reconfigure(line_buffering=True)
        self.console = Console(
            highlight=False,
            no_color=not interactive() or "NO_COLOR" in os.environ,
            force_interactive=interactive(),
            soft_wrap=True,
        )

    def info(self, message: str) -> None:
        self.console.print(message)

    def success(self, message: str) -> None:
        self.console.print(f"[green]✔[/green] {message}")

    def warning(self, message: str) -> None:
        self.console.print(f"[yellow]warning:[/yellow] {message}")

    def error(self, message: str) -> None:
        self.console.print(f"[red]error:[/red] {message}")

    def abort(self, message: str, code: int = 1) -> NoReturn:
        self.error(message)
        raise SystemExit(code)

    def status(self, message: str) -> AbstractContextManager[object]:
        """A spinner on a terminal; on CI or a pipe, one plain line instead."""
        if interactive():
            return self.console.status(message)
        self.console.print(message)
        return nullcontext()
