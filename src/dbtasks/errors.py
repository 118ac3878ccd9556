"""The exceptions dbtasks raises, and the exit code each one maps to.

The library raises only these (wrapping the cause with ``raise ... from exc``). Their ``str()``
is the one line the user sees, so it must never contain a password. The task layer turns
them into exit codes in one place (``dbtasks.tasks.common``).
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Documented process exit codes (README, "Exit codes")."""

    OK = 0
    FAILED = 1
    USAGE = 2
    DRIFT = 3
    REFUSED = 4
    INTERRUPTED = 130  # 128 + SIGINT: what a shell reports for a command ended with Ctrl-C


class DbtasksError(Exception):
    """Base class: an expected failure with a one-line, password-free message."""

    exit_code: ExitCode = ExitCode.FAILED
    #: Extra, JSON-serialisable context for ``--format json`` (e.g. a list of differences).
    details: dict[str, object]
    #: Extra lines for text output, shown under the message (e.g. the same differences).
    lines: list[str]

    def __init__(
        self,
        message: str,
        *,
        details: dict[str, object] | None = None,
        lines: list[str] | None = None,
    ) -> None:
        super().__init__(message)
        self.details = details or {}
        self.lines = lines or []


class ConfigError(DbtasksError):
    """Bad configuration or usage: malformed URL, unknown driver, missing folder, bad flag."""

    exit_code = ExitCode.USAGE


class ConnectError(DbtasksError):
    """The database server could not be reached or refused the credentials."""


class MissingDatabaseError(ConnectError):
    """The server answered, but the database does not exist (yet)."""


class CommandError(DbtasksError):
    """An operation failed: a migration, a dump tool, a statement."""


class RevisionError(CommandError):
    """An unknown revision, a downgrade below base, several heads."""


class DriftError(DbtasksError):
    """The schema and the models differ, or migrations are pending (a CI/deploy gate)."""

    exit_code = ExitCode.DRIFT


class RefusedError(DbtasksError):
    """A safety guard refused: no confirmation, a production database, data loss without --force."""

    exit_code = ExitCode.REFUSED


class InterruptedByUserError(DbtasksError):
    """The user pressed Ctrl-C."""

    exit_code = ExitCode.INTERRUPTED
