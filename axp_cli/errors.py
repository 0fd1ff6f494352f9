"""The CLI's exit codes and its one error type, imported by every command module."""

from __future__ import annotations

EXIT_OK, EXIT_NOT_PASSED, EXIT_INVALID, EXIT_ENGINE, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
EXIT_BUSY = 4  # pytest's own exit code for a usage error, which is what pytest says then


class CliError(Exception):
    def __init__(self, message: str, code: int = EXIT_INVALID) -> None:
        super().__init__(message)
        self.code = code
