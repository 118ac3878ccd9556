"""``db.backup``: check, snapshot, dump, store, describe; then, if asked, verify.

Connectivity, the dump tool and its version, the encryption keys and (for an incremental) the
whole parent chain are checked before any file is created. The backup is written into a hidden
``.partial`` folder that becomes the backup with one rename once data and manifest are on disk.
"""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, inspect, text

from dbtasks import __version__
from dbtasks.backup import incremental
from dbtasks.backup.codecs import Codec
from dbtasks.backup.crypto import KEY_FILE, Encryption, Keys, parse_recipients
from dbtasks.backup.errors import BackupUsageError
from dbtasks.backup.manifest import Manifest, StoredFile
from dbtasks.backup.pipeline import file_name, store_bytes, storing
from dbtasks.backup.progress import NoProgress, Progress
from dbtasks.backup.store import (
    StoredBackup,
    backup_name,
    new_backup,
    open_backup,
    unique_name,
)
from dbtasks.backup.streams import CHUNK, prefetching
from dbtasks.dialects import dialect_for
from dbtasks.dialects.base import Dialect, DumpSpec, Snapshot, Tool
from dbtasks.engine import connect
from dbtasks.output import human_size
from dbtasks.runners.base import Runner
from dbtasks.settings import Settings

log = logging.getLogger(__name__)

BACKUP_TYPES = ("full", "schema", "incremental")


@dataclass
class BackupOptions:
    """What ``db.backup`` was asked for (flags, already parsed)."""

    type: str = "full"
    codec: Codec = field(default_factory=lambda: Codec("gzip", 6))
    path: Path | None = None
    exclude_tables: tuple[str, ...] = ()
    exclude_data: tuple[str, ...] = ()
    recipients: tuple[str, ...] = ()
    passphrase: str | None = None
    parent: str | None = None
    verify: bool = False
    #: Keys to read an encrypted parent chain (incremental) and to verify (``--verify``).
    keys: Keys = field(default_factory=Keys)

    def as_dict(self) -> dict[str, Any]:
        return {
            "exclude_table": list(self.exclude_tables),
            "exclude_table_data": list(self.exclude_data),
            "no_data": self.type == "schema",
        }


@dataclass
class BackupResult:
    backup: StoredBackup
    seconds: float
    promoted: str | None = None
    verification: Any = None

    def as_dict(self) -> dict[str, Any]:
        m = self.backup.manifest
        return {
            "backup": str(self.backup.path),
            "id": m.id,
            "type": m.type,
            "promoted_from_incremental": self.promoted,
            "parent": m.parent["id"] if m.parent else None,
            "size": self.backup.size,
            "compression": m.compression,
            "encrypted": m.encrypted,
            "tables": m.rows(),
            "alembic_revision": m.alembic_revision,
            "seconds": round(self.seconds, 3),
            "verified": None if self.verification is None else self.verification.as_dict(),
        }

    def text(self) -> list[str]:
        m = self.backup.manifest
        lines = []
        if self.promoted:
            lines.append(f"took a full backup instead of an incremental: {self.promoted}")
        rows = sum(m.rows().values())
        what = f"{m.type} backup of {m.database!r}"
        if m.parent:
            what += f" (parent {m.parent['id']})"
        lines.append(
            f"{what}: {self.backup.path} ({human_size(self.backup.size)}, "
            f"{len(m.tables)} table(s), {rows} row(s), {self.seconds:.1f} s)"
        )
        if self.verification is not None:
            lines += self.verification.text()
        return lines


def match_tables(tables: list[str], patterns: tuple[str, ...]) -> list[str]:
    """Tables matching any glob. A pattern without a dot also matches a schema-qualified
    name by its last part (``orders`` and ``public.orders``)."""
    found = []
    for table in tables:
        short = table.rsplit(".", 1)[-1]
        for pattern in patterns:
            if fnmatchcase(table, pattern) or ("." not in pattern and fnmatchcase(short, pattern)):
                found.append(table)
                break
    for pattern in patterns:
        if not any(
            fnmatchcase(t, pattern) or fnmatchcase(t.rsplit(".", 1)[-1], pattern) for t in tables
        ):
            log.warning("exclusion %r matches no table", pattern)
    return found


def alembic_revision(conn: Connection) -> list[str] | None:
    """The Alembic revision(s) the database is at, or None when it has no version table."""
    if not inspect(conn).has_table("alembic_version"):
        return None
    rows = conn.execute(text("SELECT version_num FROM alembic_version")).scalars()
    return sorted(str(r) for r in rows)


def source_id(settings: Settings) -> str:
    """Which database a backup is of, without credentials: parents are matched on it."""
    url = settings.url
    where = f"{url.host or ''}:{url.port or ''}" if url.host or url.port else ""
    return f"{settings.backend}://{where}/{settings.database}"


def _destination(
    settings: Settings, options: BackupOptions, created: datetime, backup_type: str
) -> tuple[Path, str]:
    default = backup_name(created, settings.database, backup_type)
    if options.path is None:
        folder = settings.backup_dir
        return folder, unique_name(folder, default)
    path = options.path if options.path.is_absolute() else settings.project_dir / options.path
    if path.is_dir():
        if (path / "manifest.json").exists():
            raise BackupUsageError(f"{str(path)!r} already holds a backup")
        return path, unique_name(path, default)
    return path.parent, path.name


def create(
    settings: Settings,
    runner: Runner,
    options: BackupOptions,
    progress: Progress | None = None,
) -> BackupResult:
    """Take a backup of the database ``settings`` names, through ``runner``."""
    progress = progress or NoProgress()
    if options.type not in BACKUP_TYPES:
        raise BackupUsageError(
            f"unknown backup type {options.type!r} (choose from {', '.join(BACKUP_TYPES)})"
        )
    if options.parent and options.type != "incremental":
        raise BackupUsageError("--parent only goes with --type incremental")
    started = time.monotonic()
    dialect = dialect_for(settings.url)
    # Everything that can fail early fails here, before a file exists.
    with connect(settings.url, timeout=settings.connect_timeout) as conn:
        server_version = dialect.server_version(conn)
    tool = dialect.backup_tool(runner, server_version)
    encryption = Encryption.plan(parse_recipients(options.recipients), options.passphrase)
    header: dict[str, Any] = {"server_version": server_version, "tool": tool}
    backup_type, promoted, parents = options.type, None, None
    if backup_type == "incremental":
        parents, promoted = incremental.resolve_parent(settings, options, source_id(settings))
        if parents is None:
            backup_type = "full"
    job = _Job(settings, runner, dialect, options, encryption, progress, header)
    try:
        backup = job.take(backup_type, parents)
    except incremental.SchemaChangedError as exc:
        promoted = str(exc)
        log.warning("taking a full backup instead: %s", promoted)
        backup = job.take("full", None)
    result = BackupResult(backup, time.monotonic() - started, promoted)
    if options.verify:
        from dbtasks.backup.verify import verify

        result.verification = verify(
            settings, runner, backup, options.keys, progress=progress, allow_no_key=True
        )
    return result


@dataclass
class _Job:
    """One backup being taken (a second attempt, as a full, reuses it)."""

    settings: Settings
    runner: Runner
    dialect: Dialect
    options: BackupOptions
    encryption: Encryption | None
    progress: Progress
    header: dict[str, Any]

    def take(self, backup_type: str, parents: list[StoredBackup] | None) -> StoredBackup:
        created = datetime.now(UTC)
        folder, name = _destination(self.settings, self.options, created, backup_type)
        header = {**self.header, "id": name, "type": backup_type}
        header["created_at"] = created.isoformat()
        with (
            new_backup(folder, name) as partial,
            tempfile.TemporaryDirectory(prefix="dbtasks-backup-") as work,
        ):
            _write(
                self.settings,
                self.runner,
                self.dialect,
                self.options,
                partial,
                Path(work),
                self.encryption,
                self.progress,
                header=header,
                parents=parents,
            )
        return open_backup(folder / name)


def _write(
    settings: Settings,
    runner: Runner,
    dialect: Dialect,
    options: BackupOptions,
    partial: Path,
    work: Path,
    encryption: Encryption | None,
    progress: Progress,
    *,
    header: dict[str, Any],
    parents: list[StoredBackup] | None,
) -> Manifest:
    backup_type = str(header["type"])
    tool: Tool = header["tool"]
    files: list[StoredFile] = []
    extra: dict[str, Any] = {"source": source_id(settings)}
    with dialect.backup_snapshot(settings.url, settings.connect_timeout, work) as snap:
        tables = dialect.backup_tables(snap.conn)
        excluded = match_tables(tables, options.exclude_tables)
        kept = [t for t in tables if t not in excluded]
        no_data = match_tables(kept, options.exclude_data)
        spec = DumpSpec(
            schema_only=backup_type == "schema",
            exclude_tables=tuple(excluded),
            exclude_data=tuple(no_data),
        )
        revision = alembic_revision(snap.conn)
        with_rows = [] if spec.schema_only else [t for t in kept if t not in no_data]
        estimate = None if spec.schema_only else dialect.estimated_dump_size(snap.conn, with_rows)
        counts: dict[str, int] | None = None
        if not snap.rows_from_dump:
            counts = dialect.backup_row_counts(snap.conn, with_rows)
        tool_url = runner.tool_url(settings.url)
        if backup_type == "incremental" and parents is not None:
            outcome = incremental.write(
                dialect,
                runner,
                tool_url,
                spec,
                snap,
                partial,
                work,
                options,
                encryption,
                parents,
                progress,
                estimate,
            )
            files.append(outcome.stored)
            counts = outcome.counts
            extra_incremental: dict[str, Any] | None = outcome.summary
        else:
            extra_incremental = None
            stored, dumped = _dump(
                dialect,
                runner,
                tool_url,
                spec,
                snap,
                partial,
                options,
                encryption,
                progress,
                estimate,
                need_counts=counts is None,
            )
            files.append(stored)
            counts = counts if counts is not None else dumped
    if encryption is not None and encryption.wrapped_key is not None:
        files.append(store_bytes(partial, KEY_FILE, "key", encryption.wrapped_key))
    tables_info: dict[str, dict[str, Any]] = {}
    for table in kept:
        entry: dict[str, Any] = {"rows": counts.get(table, 0)}
        if table in no_data:
            entry["data_excluded"] = True
        tables_info[table] = entry
    manifest = Manifest(
        id=str(header["id"]),
        type=backup_type,
        created_at=str(header["created_at"]),
        finished_at=datetime.now(UTC).isoformat(),
        engine=dialect.name,
        server_version=str(header["server_version"]),
        tool=tool.as_dict(),
        database=Path(settings.database).name if dialect.name == "sqlite" else settings.database,
        alembic_revision=revision,
        compression=options.codec.as_dict(),
        encryption=None if encryption is None else encryption.as_dict(),
        files=files,
        tables=tables_info,
        options={**options.as_dict(), "excluded_tables": excluded},
        parent=None
        if not parents
        else {"id": parents[-1].id, "manifest_sha256": parents[-1].manifest_sha256},
        incremental=extra_incremental,
        dbtasks_version=__version__,
        extra=extra,
    )
    manifest.write(partial)
    return manifest


def _dump(
    dialect: Dialect,
    runner: Runner,
    tool_url: Any,
    spec: DumpSpec,
    snap: Snapshot,
    partial: Path,
    options: BackupOptions,
    encryption: Encryption | None,
    progress: Progress,
    estimate: int | None,
    *,
    need_counts: bool,
) -> tuple[StoredFile, dict[str, int]]:
    """Dump -> compress -> encrypt -> file, counting rows on the way when the engine needs it."""
    counter = dialect.backup_format().row_counter() if need_counts else None
    name = file_name("data", dialect.dump_suffix, options.codec, encryption)
    progress.start("backup", estimate)
    with (
        dialect.dump(tool_url, spec, runner, snap) as dump,
        prefetching(dump) as stream,
        storing(partial, name, "data", options.codec, encryption) as sink,
    ):
        while chunk := stream.read(CHUNK):
            sink.write(chunk)
            progress.advance(len(chunk))
            if counter is not None:
                counter.feed(chunk)
    progress.finish()
    if sink.stored is None:  # pragma: no cover  # storing() always sets it on success
        raise BackupUsageError("internal: the stored file was not described")
    return sink.stored, counter.counts() if counter is not None else {}
