"""The runner interface: where a command executes.

A runner runs argv lists (never shell strings) on some machine: this one (``local``) or inside
the service's database container (``compose``). Everything a tool is handed must come from the
runner: the URL it sees (:meth:`Runner.tool_url`), the files it reads (:meth:`Runner.secret_file`).
Secrets reach a command through its environment or a 0600 file, never its argv.

Every method checks exit codes: a non-zero exit raises :class:`~dbtasks.errors.CommandError`
whose message names the tool and quotes the last line it wrote on stderr.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from sqlalchemy.engine import URL


class ReadStream(Protocol):
    """A binary stream to read from (a command's stdout); ``read`` returns b"" at the end."""

    def read(self, size: int = -1, /) -> bytes: ...


class WriteStream(Protocol):
    """A binary stream to write to (a command's stdin)."""

    def write(self, data: bytes, /) -> int: ...


@dataclass(frozen=True)
class Completed:
    """A finished command: its exit code and everything it wrote."""

    exit_code: int
    stdout: bytes
    stderr: bytes

    @property
    def text(self) -> str:
        """stdout decoded as UTF-8 (undecodable bytes replaced)."""
        return self.stdout.decode("utf-8", "replace")


@runtime_checkable
class Runner(Protocol):
    """Where commands execute. Implementations: ``local`` (subprocess), ``compose`` (docker exec).

    An implementation class also provides ``from_settings(settings) -> Runner`` (a classmethod),
    which :func:`dbtasks.runners.runner_for` calls.
    """

    #: ``local`` or ``compose``: shown in logs and JSON output.
    name: str

    def tool_url(self, url: URL) -> URL:
        """The database URL as seen from where commands run (same password, maybe another host)."""
        ...

    def which(self, tool: str) -> str | None:
        """The path of ``tool`` where commands run, or None when it is not installed."""
        ...

    def run(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        input: bytes | None = None,  # noqa: A002  # subprocess's own name for it
        check: bool = True,
    ) -> Completed:
        """Run to completion, capturing stdout and stderr (for small outputs only).

        ``env`` is added to the command's environment. With ``check`` (the default) a non-zero
        exit raises :class:`~dbtasks.errors.CommandError`.
        """
        ...

    def reading(
        self, argv: Sequence[str], *, env: Mapping[str, str] | None = None
    ) -> AbstractContextManager[ReadStream]:
        """Start the command and yield its stdout as a stream.

        On a normal exit from the block the command is waited for and its exit code checked
        (a reader that stops early makes the command fail: read to the end). When the block
        raises, the command is killed and the block's exception propagates.
        """
        ...

    def writing(
        self, argv: Sequence[str], *, env: Mapping[str, str] | None = None
    ) -> AbstractContextManager[WriteStream]:
        """Start the command and yield a stream to its stdin.

        On a normal exit stdin is closed, the command waited for and its exit code checked.
        A write that fails because the command died raises the command's error, not
        ``BrokenPipeError``. When the block raises, the command is killed.
        """
        ...

    def secret_file(self, content: bytes) -> AbstractContextManager[str]:
        """A file holding ``content``, mode 0600, readable by the commands; yields its path
        (as the commands see it) and removes it when the block ends."""
        ...


def tail(stderr: bytes, *, secrets: Sequence[str] = ()) -> str:
    """The line that says what went wrong: the last one mentioning an error (tools often
    follow it with context, like pg_restore's "Command was: ..."), else the last line."""
    lines = [line.strip() for line in stderr.decode("utf-8", "replace").splitlines()]
    lines = [line for line in lines if line]
    errors = [line for line in lines if "error" in line.lower() or "fatal" in line.lower()]
    last = (errors or lines or [""])[-1]
    for secret in secrets:
        if secret:
            last = last.replace(secret, "***")
    return last


def failure_message(argv: Sequence[str], exit_code: int, stderr: bytes) -> str:
    """``<tool> failed (exit N): <last stderr line>``: the one line a failed command becomes."""
    tool = argv[0].rsplit("/", 1)[-1] if argv else "command"
    how = f"killed by signal {-exit_code}" if exit_code < 0 else f"exit {exit_code}"
    detail = tail(stderr)
    return f"{tool} failed ({how})" + (f": {detail}" if detail else "")
