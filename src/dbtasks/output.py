"""One reporter for text and JSON, and the logging set-up that goes with it.

Text: the result's lines on stdout, logs on stderr. JSON: exactly one object on stdout per
task (``{"task", "ok", "url", ...}``), logs still on stderr. Secrets are redacted from every
log record, as a second line of defence behind messages that never include them.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import IO, Any, Protocol

from dbtasks.errors import DbtasksError

LOGGERS = ("dbtasks", "alembic")


def human_size(n: float) -> str:
    """A byte count for people: ``512 B``, ``1.5 MB`` (powers of 1024)."""
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"


class Result(Protocol):
    def as_dict(self) -> dict[str, Any]: ...

    def text(self) -> list[str]: ...


class RedactFilter(logging.Filter):
    """Replaces each secret in a formatted log message with ``***``."""

    def __init__(self, secrets: tuple[str, ...]) -> None:
        super().__init__()
        self.secrets = tuple(s for s in secrets if s)

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            message = record.getMessage()
            if record.exc_info:
                # The formatter would add the traceback after this filter ran: add it now, so
                # an exception's text is redacted too.
                message += "\n" + logging.Formatter().formatException(record.exc_info)
                record.exc_info, record.exc_text = None, None
            for secret in self.secrets:
                message = message.replace(secret, "***")
            record.msg, record.args = message, None
        return True


class TaskHandler(logging.StreamHandler):  # type: ignore[type-arg]  # generic only in typeshed
    """The task layer's handler; remembers the loggers' settings it changed, to restore them."""

    def __init__(self, stream: IO[str]) -> None:
        super().__init__(stream)
        self.saved: dict[str, tuple[int, bool]] = {}


def configure_logging(
    *, verbose: bool, quiet: bool, secrets: tuple[str, ...], stream: IO[str] | None = None
) -> logging.Handler:
    """Send dbtasks' and Alembic's logs to stderr; ``verbose`` adds SQL and commands run.

    Returns the handler; :func:`remove_logging` takes it off again and restores the loggers'
    levels and propagation, so an application calling tasks in-process keeps its own logging.
    """
    handler = TaskHandler(stream or sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler.addFilter(RedactFilter(secrets))
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    levels = {
        # Alembic's INFO lines (plugin set-up, "Context impl") are noise unless asked for.
        name: level if name == "dbtasks" or verbose else logging.WARNING
        for name in LOGGERS
    }
    levels["sqlalchemy.engine"] = logging.INFO if verbose else logging.WARNING
    for name, logger_level in levels.items():
        logger = logging.getLogger(name)
        handler.saved[name] = (logger.level, logger.propagate)
        logger.setLevel(logger_level)
        logger.addHandler(handler)
        logger.propagate = False
    return handler


def remove_logging(handler: logging.Handler) -> None:
    saved = handler.saved if isinstance(handler, TaskHandler) else {}
    for name in (*LOGGERS, "sqlalchemy.engine"):
        logger = logging.getLogger(name)
        logger.removeHandler(handler)
        if name in saved:
            level, logger.propagate = saved[name]
            logger.setLevel(level)


class Reporter:
    """Hands a task's result or error to the user in the chosen format."""

    def __init__(
        self, output_format: str = "text", *, out: IO[str] | None = None, err: IO[str] | None = None
    ) -> None:
        self.format = output_format
        self.out = out or sys.stdout
        self.err = err or sys.stderr

    def success(self, task: str, result: Result, context: dict[str, Any]) -> None:
        if self.format == "json":
            self._json({"task": task, "ok": True, **context, **result.as_dict()})
        else:
            for line in result.text():
                print(line, file=self.out)

    def failure(self, task: str, error: DbtasksError, context: dict[str, Any]) -> None:
        if self.format == "json":
            self._json(
                {
                    "task": task,
                    "ok": False,
                    **context,
                    "error": {
                        "type": type(error).__name__,
                        "message": str(error),
                        "exit_code": int(error.exit_code),
                        **error.details,
                    },
                }
            )
        # The one line on stderr, in both formats: what a person or a CI log reads.
        print(f"dbtasks {task}: {error}", file=self.err)
        if self.format != "json":
            for line in error.lines:
                print(line, file=self.err)

    def _json(self, payload: dict[str, Any]) -> None:
        json.dump(payload, self.out, default=str, indent=2, sort_keys=False)
        self.out.write("\n")
        self.out.flush()
