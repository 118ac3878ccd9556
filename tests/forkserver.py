"""Run ``python -m dbtasks ARGS`` as a real process without paying Python's imports each time.

A test run calls the console script hundreds of times, and nearly all of each call's second is
spent importing SQLAlchemy, Alembic, Invoke and the drivers. This module is a fork server (the
idea of ``multiprocessing``'s ``forkserver``): one single-threaded process per test worker
imports all that once, then forks a child per call. The child is a real process with its own
pid, working directory, environment, standard streams (handed over as file descriptors),
signal dispositions and exit status, and runs ``dbtasks`` exactly as ``python -m dbtasks``
would; only the interpreter start-up is shared.

Tests use it through the ``cli`` fixtures; ``DBTASKS_TEST_FORKSERVER=0`` makes those start a
fresh interpreter per call instead (slower, for comparison or debugging).

Protocol, over a ``SOCK_SEQPACKET`` socket pair: the client sends one JSON request
``{"args": [...], "env": {...}, "cwd": "...", "script": null}`` (a script path instead of
``-m dbtasks`` when not null) with the child's stdin, stdout and stderr as three descriptors;
the server answers ``{"pid": N}`` once the child runs, then ``{"code": N}`` when it has ended
(negative: killed by that signal, as ``subprocess`` says).
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import runpy
import signal
import socket
import subprocess
import sys
import threading
import traceback
from pathlib import Path

PRELOAD = (
    "dbtasks.cli",
    "dbtasks.tasks",
    "dbtasks.settings",
    "dbtasks.migrations",
    "dbtasks.database",
    "dbtasks.maintenance",
    "dbtasks.backup",
    "dbtasks.backup.create",
    "dbtasks.backup.restore",
    "dbtasks.runners.compose",
    "dbtasks.output",
    "sqlalchemy",
    "sqlalchemy.dialects.postgresql",
    "sqlalchemy.dialects.mysql",
    "sqlalchemy.dialects.sqlite",
    "alembic.command",
    "alembic.config",
    "alembic.autogenerate",
    "alembic.runtime.migration",
    "psycopg",
    "pymysql",
    "docker",
    "rich.console",
    "rich.progress",
    "agentsvc.models",
)
MAX_MESSAGE = 1 << 20


class ForkServerError(RuntimeError):
    """The fork server died or answered nonsense."""


# ------------------------------------------------------------------------------------ server


def _preload() -> None:
    import importlib

    for name in PRELOAD:
        # An optional part that is not installed: the child imports what it needs itself.
        with contextlib.suppress(ImportError):
            importlib.import_module(name)


def _exit_code(exc: SystemExit) -> int:
    """What the interpreter does with an uncaught ``SystemExit``."""
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code
    print(exc.code, file=sys.stderr)
    return 1


def _child(request: dict[str, object], fds: list[int]) -> None:
    """In the forked child: become ``python -m dbtasks ARGS`` and never return."""
    code = 1
    interrupted = False
    try:
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
        for fd in fds:
            if fd > 2:
                os.close(fd)
        cwd = str(request["cwd"])
        os.chdir(cwd)
        env = request["env"]
        assert isinstance(env, dict)
        os.environ.clear()
        os.environ.update(env)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        args = request["args"]
        assert isinstance(args, list)
        script = request.get("script")
        try:
            if script is None:  # python -m dbtasks ARGS
                sys.argv = ["dbtasks", *map(str, args)]  # runpy puts the module's path first
                sys.path[0] = cwd
                runpy.run_module("dbtasks", run_name="__main__", alter_sys=True)
            else:  # python SCRIPT ARGS
                sys.argv = [str(script), *map(str, args)]
                sys.path[0] = str(Path(str(script)).resolve().parent)
                runpy.run_path(str(script), run_name="__main__")
            code = 0
        except SystemExit as exc:
            code = _exit_code(exc)
        except BaseException as exc:  # noqa: BLE001  # what the interpreter prints, then exit 1
            traceback.print_exc()
            interrupted = isinstance(exc, KeyboardInterrupt)
        # What interpreter shutdown does: wait for non-daemon threads, run atexit handlers
        # (logging.shutdown flushes the handlers), flush the standard streams.
        threading._shutdown()  # type: ignore[attr-defined]
        atexit._run_exitfuncs()
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
    finally:
        if interrupted:  # an uncaught Ctrl-C ends the interpreter by the signal itself
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGINT)
        os._exit(code)


def serve(sock: socket.socket) -> None:
    """Answer requests until the client closes its end."""
    # A Ctrl-C on the terminal reaches the whole process group: the test run and the running
    # child react to it; the server only ends when the test run closes its end.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _preload()
    while True:
        message, fds, _flags, _addr = socket.recv_fds(sock, MAX_MESSAGE, 3)
        if not message:
            return
        request = json.loads(message)
        pid = os.fork()
        if pid == 0:
            sock.close()
            _child(request, fds)
        for fd in fds:
            os.close(fd)
        sock.send(json.dumps({"pid": pid}).encode())
        _, status = os.waitpid(pid, 0)
        sock.send(json.dumps({"code": os.waitstatus_to_exitcode(status)}).encode())


# ------------------------------------------------------------------------------------ client


class ForkServer:
    """The client side: one server process, started on first use, one call at a time.

    Calls from several threads are safe: they take turns (the answers on the socket belong to
    the call in progress).
    """

    def __init__(self, repo: Path) -> None:
        self._repo = repo
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    def _start(self) -> socket.socket:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "tests.forkserver", str(theirs.fileno())],
            cwd=self._repo,
            pass_fds=[theirs.fileno()],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
        )
        theirs.close()
        self._sock = ours
        return ours

    def run(
        self,
        args: list[str],
        *,
        env: dict[str, str],
        cwd: Path,
        stdio: tuple[int, int, int],
        timeout: float,
        script: Path | None = None,
    ) -> int:
        """Run ``python -m dbtasks ARGS`` (or ``python SCRIPT ARGS``) in a child.

        Returns its exit status; past ``timeout`` seconds the child is killed and
        ``subprocess.TimeoutExpired`` raised.
        """
        request = json.dumps(
            {"args": args, "env": env, "cwd": str(cwd), "script": script and str(script)}
        ).encode()
        if len(request) >= MAX_MESSAGE:
            raise ForkServerError("request too large")
        with self._lock:
            return self._call(request, stdio, timeout, args)

    def _call(
        self, request: bytes, stdio: tuple[int, int, int], timeout: float, args: list[str]
    ) -> int:
        sock = self._sock or self._start()
        socket.send_fds(sock, [request], list(stdio))
        pid = 0
        try:
            sock.settimeout(30)
            pid = self._answer(sock)["pid"]
            sock.settimeout(timeout)
            try:
                return self._answer(sock)["code"]
            except TimeoutError:
                os.kill(pid, signal.SIGKILL)
                sock.settimeout(30)
                self._answer(sock)
                raise subprocess.TimeoutExpired(["dbtasks", *args], timeout) from None
        except (KeyboardInterrupt, OSError, ForkServerError):
            # Interrupted half-way, the socket may still hold this call's answers: start over
            # with a new server next time rather than read them as the next call's.
            if pid:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            self._abandon()
            raise

    def _answer(self, sock: socket.socket) -> dict[str, int]:
        message = sock.recv(4096)
        if not message:
            raise ForkServerError("the fork server ended unexpectedly")
        answer: dict[str, int] = json.loads(message)
        return answer

    def _abandon(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait()
            self._proc = None

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        if self._proc is not None:
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._proc = None


if __name__ == "__main__":
    serve(socket.socket(fileno=int(sys.argv[1])))
