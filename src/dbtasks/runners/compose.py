"""The compose runner: commands run inside a compose service's container (Docker SDK).

Each command is a ``docker exec`` through the Engine API, in the running container of the
service (found by its compose labels, :mod:`dbtasks.runners.compose_project`):

- ``reading`` streams the command's stdout back as it is written
  (``exec_start(stream=True, demux=True)``); ``writing`` feeds its stdin through the exec's raw
  socket (``exec_create(stdin=True)`` + ``exec_start(socket=True)``), half-closed at the end,
  while a thread drains the socket's framed output;
- an exec never fails by itself: its exit code comes from ``exec_inspect`` and is always
  checked, and a failure quotes the last line the command wrote on stderr;
- secrets travel in the exec's environment (which ``exec_inspect`` does not show) or in 0600
  files copied in with ``put_archive`` and removed afterwards; never in argv.

Streaming commands start as ``sh -c 'echo $$ >&2; exec "$@"' sh ARGV...``: the first line on
stderr is their pid in the container, so that a command the caller gives up on can be killed
(the Engine API has no call for that). The images therefore need a POSIX ``sh``, which every
official image has.
"""

from __future__ import annotations

import io
import logging
import secrets
import socket
import tarfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING, Any

from dbtasks.errors import CommandError, DbtasksError
from dbtasks.runners.base import Completed, ReadStream, WriteStream, failure_message, tail
from dbtasks.runners.compose_project import LOOPBACK, Project, Service, api_errors
from dbtasks.runners.compose_streams import (
    ExecInput,
    ExecOutput,
    FrameReader,
    StderrTail,
    close_socket,
    close_stream,
    raw_socket,
)

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

    from dbtasks.settings import Settings

log = logging.getLogger(__name__)

_WRAP = ("sh", "-c", 'echo "$$" >&2; exec "$@"', "sh")
#: How long an exec may still show as running once its output has ended.
_EXIT_WAIT = 30.0
#: How long a kill may take before the caller goes on without it.
_KILL_WAIT = 10.0
#: Where secret files go: a fresh 0700 folder in it per file.
_SECRETS_IN = "/tmp"  # noqa: S108  # inside the container, in a private folder


class ComposeRunner:
    """Runs commands inside one compose service's running container."""

    name = "compose"

    def __init__(self, project: Project, service: Service) -> None:
        self.project = project
        self.service = service
        self._owner_ids: tuple[int, int] | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> ComposeRunner:
        """The database service's container: ``db.compose.db_service``, else the engine's
        usual compose service (``postgres``, ``mysql``)."""
        from dbtasks.dialects import dialect_for

        name = settings.compose.db_service or dialect_for(settings.url).compose_service
        return cls.for_service(settings.compose.project, name)

    @classmethod
    def for_service(cls, project: str, service: str) -> ComposeRunner:
        found = Project.connect(project)
        return cls(found, found.service(service))

    @property
    def _api(self) -> Any:
        return self.project.api

    # -- URLs and tools ------------------------------------------------------------------

    def tool_url(self, url: URL) -> URL:
        """The database as a tool in this container reaches it: this service's published port
        becomes 127.0.0.1 and the container's port; another service's, its name and port."""
        if (url.host or "") in LOOPBACK and url.port is not None:
            for here, inside in self.service.ports:
                if here == url.port:
                    return url.set(host="127.0.0.1", port=inside)
        return self.project.to_network(url)

    def which(self, tool: str) -> str | None:
        done = self.run(["sh", "-c", 'command -v "$1"', "sh", tool], check=False)
        path = done.text.strip()
        return path if done.exit_code == 0 and path.startswith("/") else None

    # -- execs ---------------------------------------------------------------------------

    def _create(
        self,
        argv: Sequence[str],
        env: Mapping[str, str] | None,
        *,
        stdin: bool = False,
        wrap: bool = False,
    ) -> str:
        if not argv:
            raise CommandError("no command to run")
        command = [*_WRAP, *argv] if wrap else list(argv)
        log.debug("in %s: %s", self.service, " ".join(argv))
        with api_errors(f"cannot run {argv[0]} in {self.service}"):
            created = self._api.exec_create(
                self.service.container_id,
                command,
                stdin=stdin,
                environment=[f"{k}={v}" for k, v in (env or {}).items()] or None,
            )
        return str(created["Id"])

    def _exit_code(self, exec_id: str) -> int:
        """The exec's exit code, once the engine has recorded it (a bounded wait)."""
        deadline = time.monotonic() + _EXIT_WAIT
        pause = 0.002
        while True:
            with api_errors(f"cannot inspect a command in {self.service}"):
                info = self._api.exec_inspect(exec_id)
            if not info.get("Running"):
                code = info.get("ExitCode")
                return 1 if code is None else int(code)
            if time.monotonic() > deadline:
                raise CommandError(f"a command in {self.service} still runs after its output ended")
            time.sleep(pause)
            pause = min(pause * 2, 0.1)

    def _signal(self, errors: StderrTail, signal: str = "KILL") -> None:
        """Signal a wrapped command (by the pid it reported) that the caller gave up on."""
        errors.got_pid.wait(5)
        pid = errors.pid
        if not (pid and pid.isdigit()):
            return

        def kill() -> None:
            with suppress(DbtasksError):
                self.run(["sh", "-c", f'kill -{signal} "$1" 2>/dev/null', "sh", pid])

        # Bounded: giving up on a command must not hang on the engine in turn.
        killer = threading.Thread(target=kill, daemon=True)
        killer.start()
        killer.join(_KILL_WAIT)

    def _give_up(self, stream: ExecOutput, errors: StderrTail) -> None:
        """Stop a command whose output will not be read: close the stream, then kill it.

        In that order: while an exec's output sits unread, the engine may never report the
        kill's own exec as ended (seen with Docker 20.10, about one time in four).
        """
        stream.close()
        self._signal(errors)

    def _failure(self, argv: Sequence[str], code: int, output: bytes) -> CommandError:
        if code in (126, 127) and not tail(output):
            return CommandError(f"cannot run {argv[0]} in {self.service} (exit {code})")
        return CommandError(failure_message(argv, code, output))

    def run(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        input: bytes | None = None,  # noqa: A002  # subprocess's own name for it
        check: bool = True,
    ) -> Completed:
        if input is not None:
            with self._socket_exec(argv, env, check=check, keep_stdout=True) as (
                stdin,
                reader,
                outcome,
            ):
                stdin.write(input)
            return Completed(outcome[0], reader.stdout(), reader.errors.tail())
        exec_id = self._create(argv, env)
        with api_errors(f"cannot run {argv[0]} in {self.service}"):
            out, err = self._api.exec_start(exec_id, demux=True)
        done = Completed(self._exit_code(exec_id), out or b"", err or b"")
        if check and done.exit_code != 0:
            # The engine reports an executable it cannot find on stdout (exit 126/127).
            raise self._failure(argv, done.exit_code, done.stderr or done.stdout)
        return done

    @contextmanager
    def reading(
        self, argv: Sequence[str], *, env: Mapping[str, str] | None = None
    ) -> Iterator[ReadStream]:
        exec_id = self._create(argv, env, wrap=True)
        errors = StderrTail(wrapped=True)
        with api_errors(f"cannot run {argv[0]} in {self.service}"):
            frames = self._api.exec_start(exec_id, stream=True, demux=True)
        stream = ExecOutput(frames, errors)
        try:
            yield stream
            complete = stream.at_end()
        except BaseException:
            with suppress(Exception):
                stream.find_pid()  # a block that failed before reading has not seen it
            self._give_up(stream, errors)
            raise
        if not complete:  # as a local command would die of SIGPIPE
            self._give_up(stream, errors)
            raise CommandError(f"{argv[0]} failed: its output was not read to the end")
        stream.close()
        code = self._exit_code(exec_id)
        if code != 0:
            raise self._failure(argv, code, errors.tail())

    @contextmanager
    def _socket_exec(
        self,
        argv: Sequence[str],
        env: Mapping[str, str] | None,
        *,
        check: bool = True,
        keep_stdout: bool = False,
    ) -> Iterator[tuple[ExecInput, FrameReader, list[int]]]:
        """An exec with stdin: yields its input, its output reader, and (filled in at the end)
        its exit code."""
        exec_id = self._create(argv, env, stdin=True, wrap=True)
        with api_errors(f"cannot run {argv[0]} in {self.service}"):
            opened = self._api.exec_start(exec_id, socket=True)
        sock = raw_socket(opened)
        reader = FrameReader(sock, StderrTail(wrapped=True), keep_stdout=keep_stdout)
        reader.start()

        def failed() -> CommandError:
            output = reader.tail()  # the command died: its output has ended
            close_socket(opened)
            return self._failure(argv, self._exit_code(exec_id) or 1, output)

        outcome: list[int] = [0]
        try:
            yield ExecInput(sock, reader, failed), reader, outcome
        except BaseException:
            self._signal(reader.errors)
            close_socket(opened)
            reader.join(5)
            raise
        try:
            sock.shutdown(socket.SHUT_WR)  # end of input: the command reads EOF
        except OSError as exc:
            close_socket(opened)
            raise failed() from exc
        output = reader.tail()
        close_socket(opened)
        outcome[0] = self._exit_code(exec_id)
        if check and outcome[0] != 0:
            raise self._failure(argv, outcome[0], output)

    @contextmanager
    def writing(
        self, argv: Sequence[str], *, env: Mapping[str, str] | None = None
    ) -> Iterator[WriteStream]:
        with self._socket_exec(argv, env) as (stdin, _reader, _outcome):
            yield stdin

    def relay(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        stdout: Callable[[bytes], None],
        stderr: Callable[[bytes], None],
    ) -> int:
        """Run to completion, handing output to the callbacks as it comes; the exit code.

        A first Ctrl-C is passed on to the command (SIGINT) and its last output still relayed;
        a second one, or any other failure here, kills it.
        """
        exec_id = self._create(argv, env, wrap=True)
        errors = StderrTail(wrapped=True)
        with api_errors(f"cannot run {argv[0]} in {self.service}"):
            frames = self._api.exec_start(exec_id, stream=True, demux=True)
        interrupted = False
        try:
            while True:
                try:
                    out, err = next(frames)
                except StopIteration:
                    break
                except KeyboardInterrupt:
                    if interrupted:
                        raise
                    interrupted = True
                    self._signal(errors, "INT")
                    continue
                if err and (own := errors.add(err)):
                    stderr(own)
                if out:
                    stdout(out)
        except BaseException:
            self._signal(errors)
            raise
        finally:
            close_stream(frames)
        return self._exit_code(exec_id)

    # -- files ---------------------------------------------------------------------------

    def _owner(self) -> tuple[int, int]:
        """uid and gid of the user commands run as here (the container's configured user)."""
        if self._owner_ids is None:
            out = self.run(["sh", "-c", "id -u && id -g"]).text.split()
            try:
                self._owner_ids = (int(out[0]), int(out[1]))
            except (IndexError, ValueError) as exc:
                what = f"cannot tell which user runs commands in {self.service}"
                raise CommandError(what) from exc
        return self._owner_ids

    @contextmanager
    def secret_file(self, content: bytes) -> Iterator[str]:
        """A 0600 file owned by the commands' user, in a fresh 0700 folder, removed after."""
        uid, gid = self._owner()
        folder = f"dbtasks-{secrets.token_hex(16)}"
        archive = io.BytesIO()
        now = time.time()
        with tarfile.open(fileobj=archive, mode="w") as tar:
            for name, mode, data in ((folder, 0o700, None), (f"{folder}/secret", 0o600, content)):
                info = tarfile.TarInfo(name)
                info.mode, info.uid, info.gid, info.mtime = mode, uid, gid, now
                if data is None:
                    info.type = tarfile.DIRTYPE
                    tar.addfile(info)
                else:
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
        with api_errors(f"cannot copy a file into {self.service}"):
            self._api.put_archive(self.service.container_id, _SECRETS_IN, archive.getvalue())
        try:
            yield f"{_SECRETS_IN}/{folder}/secret"
        finally:
            with suppress(DbtasksError):
                self.run(["rm", "-rf", "--", f"{_SECRETS_IN}/{folder}"])

    def read_file(self, path: str) -> bytes:
        """A regular file's content, copied out of the container (``get_archive``)."""
        with api_errors(f"cannot copy {path} out of {self.service}"):
            chunks, _stat = self._api.get_archive(self.service.container_id, path)
            data = b"".join(chunks)
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            member = next((m for m in tar.getmembers() if m.isfile()), None)
            handle = tar.extractfile(member) if member is not None else None
            if handle is None:
                raise CommandError(f"{path} in {self.service} is not a regular file")
            return handle.read()
