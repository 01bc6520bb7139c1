"""Two kinds of failure, mapped to the CLI's exit codes (docs/design.md §2)."""

from __future__ import annotations


class UserError(Exception):
    """Bad input: exit 2, one line naming the file and field, never a traceback."""

    exit_code = 2

    def __init__(self, message: str, *, file: str | None = None, field: str | None = None):
        self.file, self.field, self.message = file, field, message
        where = ": ".join(str(p) for p in (file, field) if p)
        super().__init__(f"{where}: {message}" if where else message)


class BuildFailed(Exception):
    """The work itself failed (a tool, a check, a timeout): exit 1."""

    exit_code = 1
