"""Codecs: each round-trips in bounded chunks, and a damaged stream is an error, not data."""

from __future__ import annotations

import io
import os

import pytest

from dbtasks.backup.codecs import CODECS, Codec, CompressingWriter, decompressing_reader
from dbtasks.backup.errors import BackupError, BackupUsageError

DATA = os.urandom(300_000) + b"compressible " * 200_000


def _compress(codec: Codec, data: bytes) -> bytes:
    out = io.BytesIO()
    writer = CompressingWriter(out, codec)
    for i in range(0, len(data), 70_000):
        writer.write(data[i : i + 70_000])
    writer.close()
    assert writer.raw_size == len(data)
    return out.getvalue()


def _read_all(codec: str, blob: bytes, raw_size: int | None = None, size: int = 65536) -> bytes:
    reader = decompressing_reader(io.BytesIO(blob), codec, raw_size=raw_size)
    parts = []
    while chunk := reader.read(size):
        assert len(chunk) <= size
        parts.append(chunk)
    return b"".join(parts)


@pytest.mark.parametrize("name", CODECS)
def test_round_trip_in_bounded_chunks(name: str) -> None:
    codec = Codec.parse(name)
    blob = _compress(codec, DATA)
    if name != "none":
        assert len(blob) < len(DATA)
    assert _read_all(name, blob, len(DATA), size=4096) == DATA


@pytest.mark.parametrize("name", ["gzip", "bz2", "zstd"])
def test_truncated_stream_is_an_error(name: str) -> None:
    blob = _compress(Codec.parse(name), DATA)
    with pytest.raises(BackupError, match="corrupt or truncated"):
        _read_all(name, blob[: len(blob) // 2], len(DATA))


@pytest.mark.parametrize("name", ["gzip", "bz2"])
def test_trailing_garbage_is_an_error(name: str) -> None:
    blob = _compress(Codec.parse(name), DATA) + b"garbage"
    with pytest.raises(BackupError, match="after the end"):
        _read_all(name, blob)


def test_a_zip_bomb_stays_bounded() -> None:
    blob = _compress(Codec.parse("gzip"), bytes(50_000_000))
    reader = decompressing_reader(io.BytesIO(blob), "gzip")
    assert len(reader.read(1000)) <= 1000


def test_codec_flags_are_checked() -> None:
    assert Codec.parse("zstd") == Codec("zstd", 3)
    assert Codec.parse("gzip", "9") == Codec("gzip", 9)
    assert Codec.parse("none").suffix == ""
    for name, level, message in [
        ("lzma", None, "unknown compression"),
        ("gzip", "10", "between 1 and 9"),
        ("zstd", "fast", "whole number"),
        ("none", "3", "needs a compression"),
    ]:
        with pytest.raises(BackupUsageError, match=message):
            Codec.parse(name, level)
