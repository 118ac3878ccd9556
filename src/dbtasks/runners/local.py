"""The local runner: commands run here, as subprocesses of this process.

Each command gets this process's environment plus the ``env`` it is given (so ``PATH`` and the
locale carry over, and secrets travel in the child's environment only). Its stderr is drained
by a thread into a bounded buffer, so a chatty tool can never block on a full pipe, and its
last line is what an error message quotes.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shlex
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO, TYPE_CHECKING

from dbtasks.errors import CommandError
from dbtasks.runners.base import Completed, ReadStream, WriteStream, failure_message

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

    from dbtasks.settings import Settings

log = logging.getLogger(__name__)

#: How much of a command's stderr (and of stdout, for writers) is kept for the error message.
_TAIL_BYTES = 64 * 1024
#: Pipe buffer for streaming commands: large reads keep the per-call overhead low.
_PIPE_BUFFER = 1024 * 1024


class _Drain(threading.Thread):
    """Reads a pipe to its end, keeping only the last :data:`_TAIL_BYTES`."""

    def __init__(self, pipe: IO[bytes]) -> None:
        super().__init__(daemon=True)
        self.pipe = pipe
        self.data = bytearray()

    def run(self) -> None:
        try:
            with suppress(OSError, ValueError):
                while chunk := self.pipe.read(65536):
                    self.data += chunk
                    if len(self.data) > 2 * _TAIL_BYTES:
                        del self.data[:-_TAIL_BYTES]
        finally:
            self.pipe.close()

    def result(self) -> bytes:
        self.join()
        return bytes(self.data[-_TAIL_BYTES:])


class _Writer:
    """stdin of a command; a write to a command that has died raises *its* error."""

    def __init__(self, proc: subprocess.Popen[bytes], argv: Sequence[str], drain: _Drain) -> None:
        self._proc = proc
        self._argv = argv
        self._drain = drain

    def write(self, data: bytes, /) -> int:
        try:
            return _pipe(self._proc.stdin).write(data)
        except (BrokenPipeError, ConnectionResetError) as exc:
            raise self.error() from exc

    def error(self) -> CommandError:
        code = self._proc.wait()
        return CommandError(failure_message(self._argv, code or 1, self._drain.result()))


class LocalRunner:
    """Runs commands on this machine with :mod:`subprocess`."""

    name = "local"

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        # The base environment is captured once, here, where the runner is built.
        self._environ = dict(os.environ if environ is None else environ)

    @classmethod
    def from_settings(cls, settings: Settings) -> LocalRunner:
        return cls()

    def tool_url(self, url: URL) -> URL:
        return url

    def which(self, tool: str) -> str | None:
        return shutil.which(tool, path=self._environ.get("PATH"))

    def _env(self, env: Mapping[str, str] | None) -> dict[str, str]:
        return {**self._environ, **(env or {})}

    def _popen(
        self, argv: Sequence[str], env: Mapping[str, str] | None, **kw: object
    ) -> subprocess.Popen[bytes]:
        # argv never holds a secret (they travel in env or 0600 files), so it can be logged.
        log.debug("running %s", shlex.join(argv))
        try:
            return subprocess.Popen(  # type: ignore[call-overload, no-any-return]  # **kw
                list(argv), env=self._env(env), **kw
            )
        except OSError as exc:
            tool = argv[0] if argv else "command"
            raise CommandError(f"cannot run {tool}: {exc.strerror or exc}") from exc

    def run(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        input: bytes | None = None,  # noqa: A002  # subprocess's own name for it
        check: bool = True,
    ) -> Completed:
        proc = self._popen(
            argv,
            env,
            stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        stdout, stderr = proc.communicate(input)
        done = Completed(proc.returncode, stdout, stderr)
        if check and done.exit_code != 0:
            raise CommandError(failure_message(argv, done.exit_code, stderr))
        return done

    @contextmanager
    def reading(
        self, argv: Sequence[str], *, env: Mapping[str, str] | None = None
    ) -> Iterator[ReadStream]:
        proc = self._popen(
            argv,
            env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            bufsize=_PIPE_BUFFER,
        )
        stdout = _pipe(proc.stdout)
        _widen(stdout)
        errors = _Drain(_pipe(proc.stderr))
        errors.start()
        try:
            yield stdout
        except BaseException:
            _kill(proc)
            errors.join()
            raise
        finally:
            # Closing our end first: a command still writing gets SIGPIPE instead of hanging.
            stdout.close()
        code = proc.wait()
        stderr = errors.result()
        if code != 0:
            raise CommandError(failure_message(argv, code, stderr))

    @contextmanager
    def writing(
        self, argv: Sequence[str], *, env: Mapping[str, str] | None = None
    ) -> Iterator[WriteStream]:
        proc = self._popen(
            argv,
            env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            bufsize=_PIPE_BUFFER,
        )
        stdin = _pipe(proc.stdin)
        _widen(stdin)
        output = _Drain(_pipe(proc.stdout))
        output.start()
        writer = _Writer(proc, argv, output)
        try:
            yield writer
        except BaseException:
            _kill(proc)
            output.join()
            raise
        try:
            stdin.close()
        except (BrokenPipeError, ConnectionResetError) as exc:
            raise writer.error() from exc
        code = proc.wait()
        if code != 0:
            raise CommandError(failure_message(argv, code, output.result()))
        output.join()

    @contextmanager
    def secret_file(self, content: bytes) -> Iterator[str]:
        fd, name = tempfile.mkstemp(prefix="dbtasks-", suffix=".secret")  # mode 0600
        path = Path(name)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(content)
            yield name
        finally:
            path.unlink(missing_ok=True)


def _widen(pipe: IO[bytes]) -> None:
    """Grow a pipe to 1 MB where Linux allows (fewer stalls between a tool and this process)."""
    set_size = getattr(fcntl, "F_SETPIPE_SZ", None)
    if set_size is not None:
        with suppress(OSError):
            fcntl.fcntl(pipe.fileno(), set_size, _PIPE_BUFFER)


def _pipe(stream: IO[bytes] | None) -> IO[bytes]:
    """A pipe Popen was asked to open (never None then; the check satisfies the type)."""
    if stream is None:
        raise CommandError("a command's pipe was not opened")
    return stream


def _kill(proc: subprocess.Popen[bytes]) -> None:
    """End a command the caller gave up on, and reap it."""
    with suppress(OSError):
        proc.kill()
    for pipe in (proc.stdin, proc.stdout):
        if pipe is not None:
            with suppress(OSError):
                pipe.close()
    proc.wait()
