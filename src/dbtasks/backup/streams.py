"""Stream plumbing: hashing and counting wrappers, and a bounded channel between threads.

pyrage encrypts and decrypts with ``encrypt_io(reader, writer)`` / ``decrypt_io(reader,
writer)``: it pulls from one stream and pushes into another. A :class:`Channel` lets such a
call run in a thread while the rest of the pipeline pushes (backup) or pulls (restore), with a
few chunks in flight at most, so memory stays flat whatever the size of the data.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import queue
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import IO

from dbtasks.backup.errors import BackupError
from dbtasks.runners.base import ReadStream, WriteStream

CHUNK = 1 << 20


class HashingWriter:
    """Writes to a file, keeping the SHA-256 and size of everything written."""

    def __init__(self, handle: IO[bytes]) -> None:
        self._handle = handle
        self._sha = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes, /) -> int:
        self._sha.update(data)
        self.size += len(data)
        self._handle.write(data)
        return len(data)

    def flush(self) -> None:
        self._handle.flush()

    @property
    def sha256(self) -> str:
        return self._sha.hexdigest()

    def sync(self) -> None:
        """Flush and fsync: the bytes are on disk before the file is renamed into place."""
        self._handle.flush()
        os.fsync(self._handle.fileno())


class CountingReader:
    """Counts the bytes read through it, reporting each chunk to ``on_data``."""

    def __init__(self, inner: ReadStream, on_data: Callable[[bytes], None] | None = None) -> None:
        self._inner = inner
        self._on_data = on_data
        self.size = 0

    def read(self, size: int = -1, /) -> bytes:
        data = self._inner.read(size)
        self.size += len(data)
        if data and self._on_data is not None:
            self._on_data(data)
        return data


class HashingReader:
    """SHA-256 and size of everything read through it."""

    def __init__(self, inner: ReadStream) -> None:
        self._inner = inner
        self._sha = hashlib.sha256()
        self.size = 0

    def read(self, size: int = -1, /) -> bytes:
        data = self._inner.read(size)
        self._sha.update(data)
        self.size += len(data)
        return data

    @property
    def sha256(self) -> str:
        return self._sha.hexdigest()


class ChannelClosedError(BackupError):
    """The other end of a channel gave up (its own error is the one reported)."""


_EOF = object()


class Channel:
    """A bounded queue of byte chunks: one thread writes, another reads.

    The writer ends the stream with :meth:`close`; an error on either side is handed to the
    other (``fail``), so neither blocks forever on a partner that has died.
    """

    def __init__(self, depth: int = 8) -> None:
        self._queue: queue.Queue[object] = queue.Queue(depth)
        self._buffer = b""
        self._offset = 0
        self._eof = False
        self._error: BaseException | None = None
        self._reader_gone = threading.Event()

    # -- writer side
    def write(self, data: bytes, /) -> int:
        if data:
            self._put(bytes(data))
        return len(data)

    def close(self) -> None:
        self._put(_EOF)

    def fail(self, error: BaseException) -> None:
        """Called by either side: the partner sees ``error`` on its next call."""
        self._error = error
        self._reader_gone.set()
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(_EOF)

    def _put(self, item: object) -> None:
        while True:
            if self._reader_gone.is_set():
                raise self._error or ChannelClosedError("the reading side stopped")
            try:
                self._queue.put(item, timeout=0.1)
            except queue.Full:
                continue
            return

    # -- reader side
    def _next(self) -> object:
        """The next chunk; the partner's error once nothing more can come."""
        while True:
            try:
                return self._queue.get(timeout=0.1)
            except queue.Empty:
                if self._error is not None:
                    raise self._error from None

    def read(self, size: int = -1, /) -> bytes:
        if size is None or size < 0:
            size = CHUNK
        while self._offset >= len(self._buffer):
            if self._eof:
                return b""
            item = self._next()
            if item is _EOF:
                if self._error is not None:
                    raise self._error
                self._eof = True
                return b""
            self._buffer, self._offset = item, 0  # type: ignore[assignment]  # bytes here
        out = self._buffer[self._offset : self._offset + size]
        self._offset += len(out)
        return out


class Worker:
    """Runs ``target`` in a thread; :meth:`join` re-raises what it raised."""

    def __init__(self, target: Callable[[], None], name: str) -> None:
        self._target = target
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def _run(self) -> None:
        try:
            self._target()
        except BaseException as exc:  # noqa: BLE001  # handed to the joining thread
            self._error = exc

    def start(self) -> Worker:
        self._thread.start()
        return self

    def join(self) -> None:
        self._thread.join()
        if self._error is not None:
            raise self._error

    def join_quietly(self) -> None:
        """Wait for the thread; its error (already handed on through a channel) is dropped."""
        self._thread.join()

    @property
    def error(self) -> BaseException | None:
        return self._error

    def __enter__(self) -> Worker:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._thread.join()


@contextmanager
def prefetching(source: ReadStream, depth: int = 16) -> Iterator[ReadStream]:
    """``source`` read ahead by a thread, up to ``depth`` chunks.

    A dump tool stalls as soon as its pipe is full; reading ahead keeps it (and the database
    server behind it) busy while this process compresses, so the two use two cores.
    """
    channel = Channel(depth)

    def pump() -> None:
        try:
            while chunk := source.read(CHUNK):
                channel.write(chunk)
        except BaseException as exc:  # noqa: BLE001  # handed to the reading thread
            channel.fail(exc)
        else:
            channel.close()

    worker = Worker(pump, "dbtasks-prefetch").start()
    try:
        yield channel
    except BaseException as exc:
        channel.fail(exc)
        raise
    finally:
        worker.join_quietly()


def copy(source: ReadStream, dest: WriteStream, *, chunk: int = CHUNK) -> int:
    """Copy ``source`` to ``dest`` until the end; returns the byte count."""
    total = 0
    while data := source.read(chunk):
        dest.write(data)
        total += len(data)
    return total
