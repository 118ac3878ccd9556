"""Incremental backups: store only the rows that changed since the parent.

Design (README, "Incremental backups"):

- An incremental runs the same native dump as a full backup (same snapshot guarantees), and
  reads it row by row. Each row is identified by its primary key and fingerprinted by a
  16-byte BLAKE2b of its exact bytes in the dump.
- The parent's state is rebuilt from the chain (the base full backup, then each incremental
  after it) into an on-disk index (SQLite, in a scratch folder): key -> row hash per table.
  Memory stays flat; the scratch folder holds about 40 bytes per row.
- The incremental stores one *delta script* in the engine's own SQL (psql, mariadb, sqlite3):
  per changed table, the keys of deleted and changed rows, then the new and changed rows,
  then sequence values / AUTO_INCREMENT counters. Tables without a primary key are compared
  as a whole (an order-independent hash) and stored whole when they changed.
- Restoring an incremental restores its base full backup with the native tool, then runs
  each delta script of the chain in order: the same commands a person would type.
- When the schema differs from the parent's (a migration ran), or the parent cannot serve
  (other exclusions), the backup is taken as a full one instead, and says why.
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dbtasks.backup.errors import BackupError, BackupUsageError
from dbtasks.backup.formats.base import DumpFormat, TableInfo
from dbtasks.backup.manifest import StoredFile
from dbtasks.backup.pipeline import file_name, opening, storing
from dbtasks.backup.store import StoredBackup, chain, find_by_id, open_backup, scan
from dbtasks.backup.streams import prefetching

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

    from dbtasks.backup.create import BackupOptions
    from dbtasks.backup.crypto import Encryption
    from dbtasks.backup.progress import Progress
    from dbtasks.dialects.base import Dialect, DumpSpec, Snapshot
    from dbtasks.runners.base import ReadStream, Runner
    from dbtasks.settings import Settings

log = logging.getLogger(__name__)

_BATCH = 2000
_MASK = (1 << 128) - 1


class SchemaChangedError(BackupError):
    """The incremental cannot build on its parent (schema changed): take a full instead."""


@dataclass
class Outcome:
    stored: StoredFile
    counts: dict[str, int]
    summary: dict[str, Any]


def _row_hash(row: bytes) -> bytes:
    return hashlib.blake2b(row, digest_size=16).digest()


def resolve_parent(
    settings: Settings, options: BackupOptions, source: str
) -> tuple[list[StoredBackup] | None, str | None]:
    """The verified chain to build on, or (None, why a full backup is taken instead)."""
    from dbtasks.backup.restore import check_chain

    if options.parent:
        candidate = Path(options.parent).expanduser()
        if candidate.exists():
            parent = open_backup(candidate)
        else:
            found = find_by_id(settings.backup_dir, options.parent)
            if found is None:
                raise BackupUsageError(
                    f"no backup {options.parent!r} (neither a path nor a backup in "
                    f"{str(settings.backup_dir)!r})"
                )
            parent = found
        if parent.manifest.extra.get("source") != source:
            raise BackupUsageError(f"backup {parent.id} is of another database")
    else:
        candidates = [
            b
            for b in scan(settings.backup_dir).backups
            if b.manifest.extra.get("source") == source and b.manifest.type != "schema"
        ]
        if not candidates:
            return None, f"no earlier backup of this database in {str(settings.backup_dir)!r}"
        parent = candidates[-1]
    if parent.manifest.type == "schema":
        raise BackupUsageError(f"backup {parent.id} holds no data: it cannot be a parent")
    links = chain(parent)  # a missing or replaced link fails here
    check_chain(links, options.keys, _quiet())  # checksums, and the key opens them
    wanted = options.as_dict()
    had = links[0].manifest.options
    for key in ("exclude_table", "exclude_table_data"):
        if sorted(wanted.get(key) or []) != sorted(had.get(key) or []):
            return None, f"--{key.replace('_', '-')} differs from the parent chain's"
    return links, None


def _quiet() -> Any:
    from dbtasks.backup.progress import NoProgress

    return NoProgress()


class ParentIndex:
    """key -> row hash of every row in the parent's state, on disk."""

    def __init__(self, path: Path) -> None:
        self._db = sqlite3.connect(path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=OFF")
        self._db.execute("PRAGMA synchronous=OFF")
        self._db.execute("PRAGMA cache_size=-16000")  # 16 MB
        self._db.execute(
            "CREATE TABLE rows (t INTEGER, k BLOB, h BLOB, PRIMARY KEY (t, k)) WITHOUT ROWID"
        )
        self._tables: dict[str, int] = {}
        self.digests: dict[str, tuple[int, int]] = {}  # keyless tables: (hash sum, count)
        self._db.execute("BEGIN")

    def table_id(self, name: str) -> int:
        return self._tables.setdefault(name, len(self._tables) + 1)

    def load(self, fmt: DumpFormat, table: TableInfo, rows: Iterator[bytes]) -> None:
        tid = self.table_id(table.name)
        if table.key is None:
            total, count = 0, 0
            for row in rows:
                total = (total + int.from_bytes(_row_hash(row), "big")) & _MASK
                count += 1
            self.digests[table.name] = (total, count)
            return
        insert = "INSERT OR REPLACE INTO rows VALUES (?, ?, ?)"
        for batch in _batches(rows):
            self._db.executemany(insert, [(tid, fmt.key_of(table, r), _row_hash(r)) for r in batch])

    def clear(self, name: str) -> None:
        self._db.execute("DELETE FROM rows WHERE t = ?", (self.table_id(name),))
        self.digests[name] = (0, 0)

    def delete(self, name: str, keys: list[bytes]) -> None:
        tid = self.table_id(name)
        self._db.executemany("DELETE FROM rows WHERE t = ? AND k = ?", [(tid, k) for k in keys])

    def put(self, fmt: DumpFormat, table: TableInfo, rows: list[bytes]) -> None:
        if table.key is None:
            total, count = self.digests.get(table.name, (0, 0))
            for row in rows:
                total = (total + int.from_bytes(_row_hash(row), "big")) & _MASK
                count += 1
            self.digests[table.name] = (total, count)
            return
        tid = self.table_id(table.name)
        self._db.executemany(
            "INSERT OR REPLACE INTO rows VALUES (?, ?, ?)",
            [(tid, fmt.key_of(table, r), _row_hash(r)) for r in rows],
        )

    def lookup(self, name: str, keys: list[bytes]) -> dict[bytes, bytes]:
        tid = self.table_id(name)
        marks = ",".join("?" * len(keys))
        found = self._db.execute(
            f"SELECT k, h FROM rows WHERE t = ? AND k IN ({marks})",  # placeholders only
            [tid, *keys],
        )
        return {bytes(k): bytes(h) for k, h in found}

    def remaining(self, name: str) -> Iterator[bytes]:
        cursor = self._db.execute("SELECT k FROM rows WHERE t = ?", (self.table_id(name),))
        while batch := cursor.fetchmany(_BATCH):
            for (key,) in batch:
                yield bytes(key)

    def close(self) -> None:
        self._db.close()


def _batches(items: Iterable[bytes], size: int = _BATCH) -> Iterator[list[bytes]]:
    batch: list[bytes] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def build_index(
    fmt: DumpFormat, links: list[StoredBackup], keys: Any, work: Path
) -> tuple[ParentIndex, dict[str, TableInfo], str]:
    """The parent's state from its chain: (index, tables by name, schema fingerprint)."""
    index = ParentIndex(work / "parent-index.sqlite")
    tables: dict[str, TableInfo] = {}
    base = links[0]
    data = base.manifest.file("data")
    if data is None:
        raise BackupError(f"backup {base.id}: no data file")
    with opening(base, data, keys) as opened:
        reader = fmt.read_dump(opened.stream, work)
        for table, rows in reader.tables():
            tables[table.name] = table
            index.load(fmt, table, rows)
        schema = reader.schema_sha256()
        opened.check()
    for link in links[1:]:
        delta = link.manifest.file("delta")
        if delta is None:
            raise BackupError(f"backup {link.id}: no delta file")
        with opening(link, delta, keys) as opened:
            _replay(fmt, index, tables, opened.stream)
            opened.check()
    return index, tables, schema


def _replay(
    fmt: DumpFormat, index: ParentIndex, tables: dict[str, TableInfo], stream: ReadStream
) -> None:
    table: TableInfo | None = None
    deletes: list[bytes] = []
    rows: list[bytes] = []

    def flush() -> None:
        if table is not None:
            if deletes:
                index.delete(table.name, deletes)
            if rows:
                index.put(fmt, table, rows)
        deletes.clear()
        rows.clear()

    for event in fmt.read_delta(stream):
        if event.kind == "table":
            flush()
            table = tables.get(event.table)
            if table is None:
                raise BackupError(f"incremental script names an unknown table {event.table!r}")
            if event.replace:
                index.clear(table.name)
        elif event.kind == "delete":
            deletes.append(event.data)
        elif event.kind == "row":
            if deletes:  # deletes come first in a section: apply them before the rows
                flush()
            rows.append(event.data)
            if len(rows) >= _BATCH:
                flush()
    flush()


class _Spool:
    """Lines kept on disk until the whole dump has been compared (scripts need them later)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._handle = path.open("wb")
        self.count = 0

    def add(self, line: bytes) -> None:
        self._handle.write(line + b"\n")
        self.count += 1

    def close(self) -> None:
        self._handle.close()

    def __iter__(self) -> Iterator[bytes]:
        with self.path.open("rb") as handle:
            for line in handle:
                yield line[:-1]


@dataclass
class _Change:
    table: TableInfo
    replace: bool
    keys: _Spool
    rows: _Spool
    deleted: int = 0


@dataclass
class _Diff:
    changes: list[_Change] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    unchanged: int = 0


def _compare(
    fmt: DumpFormat,
    index: ParentIndex,
    parent_tables: dict[str, TableInfo],
    table: TableInfo,
    rows: Iterator[bytes],
    work: Path,
    n: int,
) -> tuple[_Change | None, int]:
    if table.name not in parent_tables:
        raise SchemaChangedError(
            f"the schema changed since the parent backup ({table.name!r} is new)"
        )
    keys = _Spool(work / f"t{n}.keys")
    out = _Spool(work / f"t{n}.rows")
    count = 0
    if table.key is None:
        total = 0
        for row in rows:
            total = (total + int.from_bytes(_row_hash(row), "big")) & _MASK
            out.add(row)
            count += 1
        keys.close()
        out.close()
        same = index.digests.get(table.name, (0, 0)) == (total, count)
        return (None if same else _Change(table, True, keys, out)), count
    changed_keys = 0
    for batch in _batches(rows):
        count += len(batch)
        batch_keys = [fmt.key_of(table, r) for r in batch]
        known = index.lookup(table.name, batch_keys)
        for key, row in zip(batch_keys, batch, strict=True):
            before = known.get(key)
            if before is None:
                out.add(row)
            elif before != _row_hash(row):
                keys.add(key)
                out.add(row)
                changed_keys += 1
        if known:
            index.delete(table.name, list(known))
    gone = 0
    for key in index.remaining(table.name):
        keys.add(key)
        gone += 1
    keys.close()
    out.close()
    if not keys.count and not out.count:
        return None, count
    return _Change(table, False, keys, out, deleted=gone), count


def write(
    dialect: Dialect,
    runner: Runner,
    tool_url: URL,
    spec: DumpSpec,
    snap: Snapshot,
    partial: Path,
    work: Path,
    options: BackupOptions,
    encryption: Encryption | None,
    parents: list[StoredBackup],
    progress: Progress,
    estimate: int | None,
) -> Outcome:
    """Dump, compare with the parent's state, and store the delta script."""
    fmt = dialect.backup_format()
    index, parent_tables, parent_schema = build_index(fmt, parents, options.keys, work)
    diff = _Diff()
    progress.start("incremental backup", estimate)
    try:
        with dialect.dump(tool_url, spec, runner, snap) as dump, prefetching(dump) as stream:
            counted = _Counting(stream, progress)
            reader = fmt.read_dump(counted, work)
            for n, (table, rows) in enumerate(reader.tables()):
                change, count = _compare(fmt, index, parent_tables, table, rows, work, n)
                diff.counts[table.name] = count
                if change is None:
                    diff.unchanged += 1
                else:
                    diff.changes.append(change)
    finally:
        index.close()
        progress.finish()
    if reader.schema_sha256() != parent_schema:
        raise SchemaChangedError("the schema changed since the parent backup")
    name = file_name("delta", ".sql", options.codec, encryption)
    with storing(partial, name, "delta", options.codec, encryption) as sink:
        writer = fmt.delta_writer(sink, reader)
        for change in diff.changes:
            writer.table(change.table, replace=change.replace, keys=change.keys, rows=change.rows)
        writer.close()
    if sink.stored is None:  # pragma: no cover  # storing() sets it on success
        raise BackupError("internal: the delta file was not described")
    summary = {
        "chain": [p.id for p in parents],
        "unchanged_tables": diff.unchanged,
        "tables": {
            c.table.name: {
                "replaced": c.replace,
                "deleted_keys": c.keys.count if not c.replace else None,
                "gone": c.deleted,
                "written": c.rows.count,
            }
            for c in diff.changes
        },
    }
    return Outcome(sink.stored, diff.counts, summary)


class _Counting:
    """Progress for a stream the format reader pulls from."""

    def __init__(self, inner: ReadStream, progress: Progress) -> None:
        self._inner = inner
        self._progress = progress

    def read(self, size: int = -1, /) -> bytes:
        data = self._inner.read(size)
        self._progress.advance(len(data))
        return data
