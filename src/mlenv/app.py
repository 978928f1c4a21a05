"""The one console of the CLI: messages, spinners and aborts go through here."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from rich.console import Console

from mlenv.errors import USER_ERROR, UserError

if TYPE_CHECKING:
    from mlenv.clients import Platform
    from mlenv.config import MlenvConfig
    from mlenv.profiles import Profile


def interactive() -> bool:
    return sys.stdout.isatty() and not os.environ.get("CI")


class Application:
    def __init__(self, *, verbose: bool = False, config_file: Path | None = None) -> None:
        self.verbose = verbose
        self.config_file = config_file
        # Progress lines must reach a log or CI as they happen, not when a buffer fills.
        if hasattr(sys.stdout, "reconfigure"):
            sys.stdout.reconfigure(line_buffering=True)
        self.console = Console(
            highlight=False,
            no_color=not interactive() or "NO_COLOR" in os.environ,
            force_interactive=interactive(),
            soft_wrap=True,
            # Logs and pipes get whole table rows (paths, URLs) rather than wrapped cells.
            width=None if interactive() or "COLUMNS" in os.environ else 200,
        )

    def info(self, message: str) -> None:
        self.console.print(message)

    def success(self, message: str) -> None:
        self.console.print(f"[green]✔[/green] {message}")

    def warning(self, message: str) -> None:
        self.console.print(f"[yellow]warning:[/yellow] {message}")

    def error(self, message: str) -> None:
        self.console.print(f"[red]error:[/red] {message}")

    def abort(self, message: str, code: int = USER_ERROR) -> NoReturn:
        """Stop the command; the CLI's edge reports it (once) and exits with `code`."""
        raise UserError(message, code=code)

    def report(self, err: UserError) -> None:
        self.error(err.message)
        for problem in err.problems:
            self.console.print(f"  - {problem}")

    def status(self, message: str) -> AbstractContextManager[object]:
        """A spinner on a terminal; on CI or a pipe, one plain line instead."""
        if interactive():
            return self.console.status(message)
        self.console.print(message)
        return nullcontext()

    @contextmanager
    def locked(self, command: str) -> Iterator[None]:
        """The environment's lock for a command that changes it; a second one aborts, saying who holds it."""
        from mlenv.lock import environment_lock

        with environment_lock(self.state, command):
            yield

    @cached_property
    def config(self) -> MlenvConfig:
        """mlenv.yaml (or the embedded default), validated; a bad file aborts before anything runs."""
        from mlenv.config import config_path, load

        return load(config_path(self.config_file))

    def raw(self, line: str) -> None:
        self.console.print(line, markup=False, highlight=False)

    @cached_property
    def profile(self) -> Profile:
        """The profile mlenv.yaml names, reporting here."""
        from mlenv.profiles import Run, for_run

        return for_run(Run(self.config, self.state, self))

    def platform(self) -> AbstractContextManager[Platform]:
        """The services' clients (the dataset store, Label Studio, the model registry) for a command,
        reaching the proxy where this profile publishes it."""
        from mlenv import clients

        return clients.platform(self.state, self.profile.status_address)

    @property
    def state(self) -> Path:
        from mlenv.paths import state_dir

        return state_dir(self.config.environment)
