"""Compression codecs: gzip, bz2, zstd or none, streamed in bounded memory.

Backups compress in this process (the dump tools run uncompressed), which lets the dump and
the compressor use two cores and lets every engine offer the same codecs. Each stored file is
a single standard stream: ``gunzip``, ``bunzip2`` and ``zstd -d`` read it.

Decompression never produces more than it is asked for (``max_length`` / a bounded reader),
so a highly compressible backup cannot balloon memory.
"""

from __future__ import annotations

import bz2
import zlib
from dataclasses import dataclass
from typing import IO, Any, Protocol, cast

from dbtasks.backup.errors import BackupError, BackupUsageError
from dbtasks.runners.base import ReadStream, WriteStream

CODECS = ("gzip", "bz2", "zstd", "none")
#: File name suffix of each codec (what ``gunzip``, ``bunzip2``, ``zstd -d`` expect).
SUFFIXES = {"gzip": ".gz", "bz2": ".bz2", "zstd": ".zst", "none": ""}
_LEVELS = {"gzip": (1, 9, 6), "bz2": (1, 9, 9), "zstd": (1, 19, 3)}
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Codec:
    """A codec and its level (None for ``none``)."""

    name: str
    level: int | None

    @classmethod
    def parse(cls, name: str, level: int | str | None = None) -> Codec:
        """Validate a ``--compression`` / ``--level`` pair; the default level when none given."""
        if name not in CODECS:
            raise BackupUsageError(
                f"unknown compression {name!r} (choose from {', '.join(CODECS)})"
            )
        if name == "none":
            if level not in (None, ""):
                raise BackupUsageError("--level needs a compression other than none")
            return cls(name, None)
        low, high, default = _LEVELS[name]
        if level in (None, ""):
            return cls(name, default)
        try:
            value = int(level)
        except ValueError:
            raise BackupUsageError(f"--level must be a whole number, not {level!r}") from None
        if not low <= value <= high:
            raise BackupUsageError(f"--level for {name} must be between {low} and {high}")
        return cls(name, value)

    @property
    def suffix(self) -> str:
        return SUFFIXES[self.name]

    def as_dict(self) -> dict[str, Any]:
        return {"codec": self.name, "level": self.level}


class Compressor(Protocol):
    def compress(self, data: bytes, /) -> bytes: ...

    def flush(self) -> bytes: ...


class _Identity:
    def compress(self, data: bytes, /) -> bytes:
        return data

    def flush(self) -> bytes:
        return b""


def deflate() -> Any:
    """zlib-ng when installed (same format and levels, about twice as fast), else zlib."""
    try:
        from zlib_ng import zlib_ng
    except ImportError:
        return zlib
    return zlib_ng


def compressor(codec: Codec) -> Compressor:
    """A fresh streaming compressor for ``codec``."""
    if codec.name == "gzip":
        return deflate().compressobj(codec.level or 6, zlib.DEFLATED, 31)  # type: ignore[no-any-return]  # 31: gzip framing
    if codec.name == "bz2":
        return bz2.BZ2Compressor(codec.level or 9)
    if codec.name == "zstd":
        import zstandard

        cctx = zstandard.ZstdCompressor(level=codec.level or 3, write_checksum=True)
        compressobj: Compressor = cctx.compressobj()
        return compressobj
    return _Identity()


class CompressingWriter:
    """Compresses what is written to it into ``dest``; :meth:`close` ends the stream."""

    def __init__(self, dest: WriteStream, codec: Codec) -> None:
        self._dest = dest
        self._compressor = compressor(codec)
        self.raw_size = 0

    def write(self, data: bytes, /) -> int:
        self.raw_size += len(data)
        out = self._compressor.compress(data)
        if out:
            self._dest.write(out)
        return len(data)

    def close(self) -> None:
        out = self._compressor.flush()
        if out:
            self._dest.write(out)


def _corrupt(codec: str, why: str) -> BackupError:
    return BackupError(f"{codec} stream is corrupt or truncated: {why}")


class _ZlibLikeReader:
    """gzip / bz2 decompression with bounded output, failing on truncation or trailing data."""

    def __init__(self, source: ReadStream, codec: str) -> None:
        self._source = source
        self._codec = codec
        self._d: Any = deflate().decompressobj(31) if codec == "gzip" else bz2.BZ2Decompressor()
        self._pending = b""
        self._done = False

    def read(self, size: int = -1, /) -> bytes:
        size = _CHUNK if size is None or size < 0 else size
        while not self._done:
            if self._d.eof:
                if self._d.unused_data or self._pending or self._source.read(1):
                    raise _corrupt(self._codec, "data after the end of the stream")
                self._done = True
                break
            if not self._pending and self._needs_input():
                self._pending = self._source.read(_CHUNK)
                if not self._pending:
                    raise _corrupt(self._codec, "unexpected end of data")
            try:
                out = self._step(size)
            except (zlib.error, deflate().error, OSError, EOFError, ValueError) as exc:
                raise _corrupt(self._codec, str(exc)) from exc
            if out:
                return out
        return b""

    def _needs_input(self) -> bool:
        if self._codec == "gzip":
            return not self._d.unconsumed_tail
        return bool(self._d.needs_input)

    def _step(self, size: int) -> bytes:
        if self._codec == "gzip":
            data = self._d.unconsumed_tail or self._pending
            self._pending = b""
            return bytes(self._d.decompress(data, size))
        data, self._pending = self._pending, b""
        return bytes(self._d.decompress(data, size))


class _SizeCheckedReader:
    """A reader that fails unless exactly ``expected`` bytes come out (zstd truncation check)."""

    def __init__(self, inner: ReadStream, expected: int | None, codec: str) -> None:
        self._inner = inner
        self._expected = expected
        self._codec = codec
        self._seen = 0

    def read(self, size: int = -1, /) -> bytes:
        try:
            out = self._inner.read(_CHUNK if size is None or size < 0 else size)
        except Exception as exc:  # zstandard raises its own ZstdError
            raise _corrupt(self._codec, str(exc)) from exc
        self._seen += len(out)
        expected = self._expected
        if expected is not None and (self._seen > expected or (not out and self._seen != expected)):
            raise _corrupt(self._codec, f"{self._seen} bytes instead of {expected}")
        return out


def decompressing_reader(
    source: ReadStream, codec: str, *, raw_size: int | None = None
) -> ReadStream:
    """``source`` decompressed. ``raw_size`` (from the manifest) is checked at the end."""
    if codec in ("gzip", "bz2"):
        reader: ReadStream = _ZlibLikeReader(source, codec)
    elif codec == "zstd":
        import zstandard

        # zstandard only calls read(); its stubs ask for a full IO.
        stream = cast("IO[bytes]", source)
        reader = zstandard.ZstdDecompressor().stream_reader(stream, read_across_frames=False)
    elif codec == "none":
        reader = source
    else:
        raise BackupError(f"unknown compression {codec!r} in the manifest")
    return _SizeCheckedReader(reader, raw_size, codec)
