"""The one error type for what a user must fix: raised anywhere, reported once by the CLI.

Every module that can fail for a reason outside mlenv's control (a missing tool, a host that
belongs to another environment, a file that was removed) raises a subclass of `UserError`
whose message says what to do. The `mlenv` command prints it as one `error:` line (or one
line per problem) and exits with its code; nothing below the CLI prints or exits.
"""

from __future__ import annotations

USER_ERROR = 1
CONFIG_ERROR = 2
NEVER_UP = 3


class UserError(Exception):
    """Something the user must change; `problems` are listed below the message, one per line."""

    code = USER_ERROR

    def __init__(self, message: str, *, problems: list[str] | None = None, code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.problems = list(problems or [])
        if code is not None:
            self.code = code

    def __str__(self) -> str:
        return "; ".join([self.message, *self.problems]) if self.problems else self.message


def from_os_error(err: OSError) -> UserError:
    """A missing file, tool or permission as the user sees it (no traceback)."""
    where = f": {err.filename}" if err.filename else ""
    if isinstance(err, FileNotFoundError):
        return UserError(f"not found{where} ({err.strerror or err})")
    if isinstance(err, PermissionError):
        return UserError(f"permission denied{where}: run mlenv as the user that owns its state folder, or as root")
    return UserError(f"{err.strerror or err}{where}")
