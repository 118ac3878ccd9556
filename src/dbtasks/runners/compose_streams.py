"""The byte streams of a command run with ``docker exec`` (the compose runner's plumbing).

Output comes from the Engine API as frames: an 8-byte header (stream 1 = stdout or
2 = stderr, three zero bytes, a big-endian 32-bit size), then that many bytes. The SDK
demultiplexes a streamed exec (``exec_start(stream=True, demux=True)``) into
``(stdout, stderr)`` pairs; on the raw socket an exec with stdin returns
(``exec_start(socket=True)``), :class:`FrameReader` parses the frames itself.

Streaming commands start as ``sh -c 'echo $$ >&2; exec "$@"'`` (see
:mod:`dbtasks.runners.compose`): :class:`StderrTail` takes that first line as the pid.
"""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Callable
from contextlib import suppress
from typing import Any

from dbtasks.errors import CommandError

#: How much of a command's stderr (and output, for writers) is kept for the error message.
TAIL_BYTES = 64 * 1024
_HEADER = struct.Struct(">BxxxL")


class StderrTail:
    """A command's stderr: the wrapper's pid from its first line, then the last bytes."""

    def __init__(self, wrapped: bool) -> None:
        self._head: bytearray | None = bytearray() if wrapped else None
        self.pid: str | None = None
        self.data = bytearray()
        self.got_pid = threading.Event()
        if not wrapped:
            self.got_pid.set()

    def add(self, chunk: bytes) -> bytes:
        """Take a chunk of stderr; returns what of it the command itself wrote."""
        if self._head is not None:
            self._head += chunk
            line, newline, rest = self._head.partition(b"\n")
            if not newline:
                return b""
            self.pid = line.decode("ascii", "replace").strip()
            self._head = None
            self.got_pid.set()
            chunk = bytes(rest)
        self.data += chunk
        if len(self.data) > 2 * TAIL_BYTES:
            del self.data[:-TAIL_BYTES]
        return chunk

    def tail(self) -> bytes:
        return bytes(self.data[-TAIL_BYTES:])


class ExecOutput:
    """A command's stdout from the SDK's demultiplexed stream, as a :class:`ReadStream`.

    ``read(n)`` returns ``n`` bytes unless the output ends first, as a buffered pipe does.
    """

    def __init__(self, frames: Any, errors: StderrTail) -> None:
        self._frames = frames
        self._iter = iter(frames)
        self._errors = errors
        self._buf = bytearray()
        self.eof = False

    def _fill(self) -> None:
        try:
            out, err = next(self._iter)
        except StopIteration:
            self.eof = True
            return
        if err:
            self._errors.add(err)
        if out:
            self._buf += out

    def read(self, size: int = -1, /) -> bytes:
        while (size < 0 or len(self._buf) < size) and not self.eof:
            self._fill()
        if size < 0 or size >= len(self._buf):
            data = bytes(self._buf)
            self._buf.clear()
        else:
            data = bytes(self._buf[:size])
            del self._buf[:size]
        return data

    def at_end(self) -> bool:
        """Whether everything was read (reads ahead one frame to tell)."""
        while not self._buf and not self.eof:
            self._fill()
        return not self._buf

    def find_pid(self) -> None:
        """Read on until the wrapper's pid line has come (it is the first thing written)."""
        while self._errors.pid is None and not self.eof:
            self._fill()
        self._errors.got_pid.set()

    def close(self) -> None:
        close_stream(self._frames)


def close_stream(frames: Any) -> None:
    """End a streamed exec's request: the SDK's ``CancellableStream.close`` shuts its socket
    but leaves the response, and with it the socket's file, to the garbage collector."""
    with suppress(Exception):
        frames.close()
    response = getattr(frames, "_response", None)
    if response is not None:
        with suppress(Exception):
            response.close()


def close_socket(sock: Any) -> None:
    """Close what ``exec_start(socket=True)`` returned: the socket, the file object over it,
    and the HTTP response they came from (else the file stays open until collected)."""
    for thing in (getattr(sock, "_sock", None), sock, getattr(sock, "_response", None)):
        if thing is not None:
            with suppress(Exception):
                thing.close()


def raw_socket(sock: Any) -> socket.socket:
    """The socket under what ``exec_start(socket=True)`` returns (a SocketIO over UNIX/TCP)."""
    raw = getattr(sock, "_sock", sock)
    if not isinstance(raw, socket.socket):
        raise CommandError("the compose runner streams input over UNIX or TCP engines only")
    raw.settimeout(None)  # a restore may wait long for a lock: silence is not a failure
    return raw


class FrameReader(threading.Thread):
    """Drains an exec's raw socket to its end, keeping the tail of stdout and stderr together
    (as the local runner keeps a writer's output) and the stderr apart."""

    def __init__(
        self, sock: socket.socket, errors: StderrTail, *, keep_stdout: bool = False
    ) -> None:
        super().__init__(daemon=True)
        self.sock = sock
        self.errors = errors
        self.output = bytearray()
        self.keep_stdout = keep_stdout  # all of it (``run``), else its tail
        self.stdout_data = bytearray()

    def _exactly(self, size: int) -> bytes:
        data = bytearray()
        while len(data) < size:
            chunk = self.sock.recv(min(size - len(data), 1 << 20))
            if not chunk:
                break
            data += chunk
        return bytes(data)

    def run(self) -> None:
        with suppress(OSError):
            while len(header := self._exactly(_HEADER.size)) == _HEADER.size:
                stream, size = _HEADER.unpack(header)
                data = self._exactly(size)
                complete = len(data) == size
                if stream == 2:
                    data = self.errors.add(data)
                else:
                    self.stdout_data += data
                    if not self.keep_stdout and len(self.stdout_data) > 2 * TAIL_BYTES:
                        del self.stdout_data[:-TAIL_BYTES]
                self.output += data
                if len(self.output) > 2 * TAIL_BYTES:
                    del self.output[:-TAIL_BYTES]
                if not complete:
                    break
        self.errors.got_pid.set()  # nothing more will come: nobody waits for a pid forever

    def tail(self) -> bytes:
        """The output's last bytes, once it has ended."""
        self.join()
        return bytes(self.output[-TAIL_BYTES:])

    def stdout(self) -> bytes:
        """What the command wrote on stdout (all of it with ``keep_stdout``, else its last
        bytes), once it has ended."""
        self.join()
        return bytes(self.stdout_data if self.keep_stdout else self.stdout_data[-TAIL_BYTES:])


class ExecInput:
    """stdin of a command in a container; a write to a command that has died raises *its*
    error (``failed`` builds it), not ``BrokenPipeError``.

    The engine goes on reading (and dropping) input after the command has exited, so a
    write cannot tell; the output can: it ends when the command does (``reader``).
    """

    def __init__(
        self, sock: socket.socket, reader: FrameReader, failed: Callable[[], CommandError]
    ) -> None:
        self._sock = sock
        self._reader = reader
        self._failed = failed

    def write(self, data: bytes, /) -> int:
        if not self._reader.is_alive():
            raise self._failed()
        try:
            self._sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError) as exc:
            raise self._failed() from exc
        return len(data)
