"""Channels between threads, and manifests that notice their own damage."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from dbtasks.backup.errors import BackupError
from dbtasks.backup.manifest import Manifest, StoredFile
from dbtasks.backup.streams import Channel, Worker, copy, prefetching


def test_channel_carries_bytes_between_threads() -> None:
    channel = Channel(depth=2)
    payload = [bytes([i]) * 100_000 for i in range(20)]

    def produce() -> None:
        for part in payload:
            channel.write(part)
        channel.close()

    worker = Worker(produce, "producer").start()
    out = io.BytesIO()
    copy(channel, out, chunk=7777)
    worker.join()
    assert out.getvalue() == b"".join(payload)


def test_a_failing_writer_fails_the_reader() -> None:
    channel = Channel(depth=2)

    def produce() -> None:
        channel.write(b"some")
        channel.fail(BackupError("the producer broke"))

    Worker(produce, "producer").start().join()
    assert channel.read(4) == b"some"
    with pytest.raises(BackupError, match="producer broke"):
        channel.read(4)


def test_a_failing_reader_stops_the_writer() -> None:
    channel = Channel(depth=1)
    channel.fail(BackupError("reader gone"))
    with pytest.raises(BackupError, match="reader gone"):
        channel.write(b"x" * 10)


def test_prefetching_reads_ahead_and_ends() -> None:
    source = io.BytesIO(b"abc" * 1_000_000)
    with prefetching(source, depth=3) as stream:
        assert copy(stream, io.BytesIO()) == 3_000_000


def _manifest() -> Manifest:
    return Manifest(
        id="20260101T000000Z-app-full",
        type="full",
        created_at="2026-01-01T00:00:00+00:00",
        finished_at="2026-01-01T00:00:01+00:00",
        engine="sqlite",
        server_version="3.40.1",
        tool={"name": "sqlite3-backup-api", "version": "3.40.1"},
        database="app.db",
        alembic_revision=["c3e5a7b90003"],
        compression={"codec": "gzip", "level": 6},
        encryption=None,
        files=[StoredFile("data.sqlite.gz", "data", "0" * 64, 10, 20)],
        tables={"agents": {"rows": 3}},
        options={},
        extra={"source": "sqlite:///app.db"},
    )


def test_manifest_round_trip_and_self_check(tmp_path: Path) -> None:
    sha = _manifest().write(tmp_path)
    read, read_sha = Manifest.read(tmp_path)
    assert read == _manifest()
    assert read_sha == sha
    body = json.loads((tmp_path / "manifest.json").read_text())
    body["tables"]["agents"]["rows"] = 4
    (tmp_path / "manifest.json").write_text(json.dumps(body))
    with pytest.raises(BackupError, match="checksum does not match"):
        Manifest.read(tmp_path)


def test_manifest_problems_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(BackupError, match="not a finished backup"):
        Manifest.read(tmp_path)
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(BackupError, match="not JSON"):
        Manifest.read(tmp_path)
    (tmp_path / "manifest.json").write_text(
        json.dumps({"format": "dbtasks-backup", "format_version": 99})
    )
    with pytest.raises(BackupError, match="format version 99"):
        Manifest.read(tmp_path)
