"""SQLite: the database is a file; creating it means creating the file and its folder."""

from __future__ import annotations

import os
import sqlite3
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection
from sqlalchemy.engine import URL

from dbtasks.dialects.base import Dialect, DumpSpec, Health, Snapshot, TableStats, Tool, run_literal
from dbtasks.errors import CommandError, MissingDatabaseError

if TYPE_CHECKING:
    from dbtasks.backup.formats.base import DumpFormat
    from dbtasks.runners.base import ReadStream, Runner, WriteStream

# Files SQLite keeps beside the database, removed with it.
_COMPANIONS = ("-wal", "-shm", "-journal")


class SQLiteDialect(Dialect):
    name = "sqlite"
    compose_service = "app"

    def engine_options(self, timeout: int) -> dict[str, Any]:
        # For SQLite the timeout is how long to wait for another writer's lock.
        return {"connect_args": {"timeout": timeout}}

    def before_connect(self, url: URL) -> None:
        if not self.database_exists(url, 0):
            raise MissingDatabaseError(
                f"SQLite database {url.database!r} does not exist (db.init creates it)"
            )

    def database_exists(self, url: URL, timeout: int) -> bool:
        return Path(url.database or "").is_file()

    def create_database(self, url: URL, timeout: int) -> None:
        path = Path(url.database or "")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            sqlite3.connect(path).close()
        except (OSError, sqlite3.Error) as exc:
            raise CommandError(f"cannot create SQLite database {str(path)!r}: {exc}") from exc

    def drop_database(self, url: URL, timeout: int) -> None:
        path = Path(url.database or "")
        try:
            for candidate in (path, *(Path(f"{path}{s}") for s in _COMPANIONS)):
                candidate.unlink(missing_ok=True)
        except OSError as exc:
            raise CommandError(f"cannot delete SQLite database {str(path)!r}: {exc}") from exc

    def server_version(self, conn: Connection) -> str:
        return sqlite3.sqlite_version

    def analyze(self, conn: Connection, tables: list[str]) -> list[str]:
        run_literal(conn, "ANALYZE")
        return ["ANALYZE"]

    def vacuum(self, conn: Connection, tables: list[str]) -> list[str]:
        run_literal(conn, "VACUUM")
        return ["VACUUM"]

    def integrity_problems(self, conn: Connection, tables: list[str]) -> list[str]:
        problems = [
            str(r[0])
            for r in run_literal(conn, "PRAGMA integrity_check").all()
            if str(r[0]) != "ok"
        ]
        # foreign_key_check rows: table, rowid, referenced table, constraint index.
        problems += [
            f"{r[0]} row {r[1]}: no matching row in {r[2]}"
            for r in run_literal(conn, "PRAGMA foreign_key_check").all()
        ]
        return problems

    def health(self, conn: Connection) -> Health:
        def pragma(name: str) -> int:
            return int(run_literal(conn, f"PRAGMA {name}").scalar_one())

        page = pragma("page_size")
        counts = self.row_counts(conn, self.table_names(conn))
        tables = [TableStats(name, rows, None, {}) for name, rows in counts.items()]
        return Health(
            pragma("page_count") * page,
            tables,
            {
                "reclaimable_bytes": pragma("freelist_count") * page,
                "journal_mode": str(run_literal(conn, "PRAGMA journal_mode").scalar_one()),
            },
        )

    # Backups: SQLite's online backup API copies the file consistently while other
    # connections write; the copy is what is stored (restorable by copying it back).
    # Everything runs in this process: there is no client tool to call.

    dump_suffix = ".sqlite"

    def backup_tool(self, runner: Runner, server_version: str) -> Tool:
        return Tool("sqlite3-backup-api", "(in process)", sqlite3.sqlite_version)

    def restore_tools(
        self, runner: Runner, dump_tool: dict[str, str], *, deltas: bool
    ) -> list[Tool]:
        return []

    @contextmanager
    def backup_snapshot(self, url: URL, timeout: int, workdir: Path) -> Iterator[Snapshot]:
        from sqlalchemy.engine import make_url

        from dbtasks.engine import connect

        copy = workdir / "snapshot.sqlite"
        try:
            source = sqlite3.connect(url.database or "", timeout=timeout)
            try:
                target = sqlite3.connect(copy)
                with target:
                    source.backup(target)  # all pages in one step: one consistent read
                target.close()
            finally:
                source.close()
        except sqlite3.Error as exc:
            raise CommandError(f"cannot copy SQLite database {url.database!r}: {exc}") from exc
        with connect(make_url(f"sqlite:///{copy}"), timeout=timeout) as conn:
            yield Snapshot(conn, path=copy)

    def estimated_dump_size(self, conn: Connection, tables: list[str]) -> int | None:
        pages = int(run_literal(conn, "PRAGMA page_count").scalar_one())
        return pages * int(run_literal(conn, "PRAGMA page_size").scalar_one())

    @contextmanager
    def dump(
        self, url: URL, spec: DumpSpec, runner: Runner, snapshot: Snapshot
    ) -> Iterator[ReadStream]:
        if snapshot.path is None:
            raise CommandError("SQLite dump without a snapshot copy")
        snapshot.conn.close()  # the copy is edited below; no other connection may hold it
        if spec.schema_only or spec.exclude_tables or spec.exclude_data:
            _trim(snapshot.path, spec)
        with snapshot.path.open("rb") as stream:
            yield stream

    @contextmanager
    def restore_dump(self, url: URL, runner: Runner, timeout: int) -> Iterator[WriteStream]:
        target = Path(url.database or "")
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".restore", dir=target.parent)
        temp = Path(name)
        try:
            with os.fdopen(fd, "wb") as handle:
                yield handle
                handle.flush()
                os.fsync(handle.fileno())
            _check_file(temp)
            for suffix in _COMPANIONS:
                Path(f"{target}{suffix}").unlink(missing_ok=True)
            temp.replace(target)
        finally:
            temp.unlink(missing_ok=True)

    @contextmanager
    def check_dump(self, runner: Runner) -> Iterator[WriteStream]:
        with tempfile.TemporaryDirectory(prefix="dbtasks-check-") as folder:
            path = Path(folder) / "check.sqlite"
            with path.open("wb") as handle:
                yield handle
            _check_file(path)

    @contextmanager
    def apply_delta(self, url: URL, runner: Runner, timeout: int) -> Iterator[WriteStream]:
        conn = sqlite3.connect(url.database or "", timeout=timeout, isolation_level=None)
        script = _ScriptRunner(conn)
        try:
            yield script
            script.finish()
        except sqlite3.Error as exc:
            raise CommandError(f"incremental script failed: {exc}") from exc
        finally:
            if conn.in_transaction:
                conn.rollback()
            conn.close()

    def backup_format(self) -> DumpFormat:
        from dbtasks.backup.formats.sqlitedb import SqliteFormat

        return SqliteFormat()


def _trim(path: Path, spec: DumpSpec) -> None:
    """Drop excluded tables and empty excluded data in the private copy, then VACUUM so the
    removed rows are really gone from the file."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        quote = _quote_identifier
        names = [
            str(r[0])
            for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            )
        ]
        conn.execute("PRAGMA foreign_keys = OFF")
        conn.execute("BEGIN")
        for name in spec.exclude_tables:
            conn.execute(f"DROP TABLE IF EXISTS {quote(name)}")
        emptied = names if spec.schema_only else list(spec.exclude_data)
        for name in emptied:
            if name not in spec.exclude_tables:
                conn.execute(f"DELETE FROM {quote(name)}")
        if spec.schema_only and any(
            r[0] == "sqlite_sequence"
            for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        ):
            conn.execute("DELETE FROM sqlite_sequence")
        conn.execute("COMMIT")
        conn.execute("VACUUM")
    except sqlite3.Error as exc:
        raise CommandError(f"cannot prepare the SQLite copy: {exc}") from exc
    finally:
        conn.close()


def _quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _check_file(path: Path) -> None:
    """A complete, healthy SQLite file, or :class:`CommandError`."""
    try:
        with path.open("rb") as handle:
            header = handle.read(100)
        if len(header) < 100 or not header.startswith(b"SQLite format 3\x00"):
            raise CommandError("not an SQLite database file (bad header)")
        page_size = int.from_bytes(header[16:18], "big")
        page_size = 65536 if page_size == 1 else page_size
        pages = int.from_bytes(header[28:32], "big")
        if pages and path.stat().st_size < pages * page_size:
            raise CommandError("the SQLite file is truncated")
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            result = [str(r[0]) for r in conn.execute("PRAGMA integrity_check")]
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise CommandError(f"the SQLite file is damaged: {exc}") from exc
    if result != ["ok"]:
        raise CommandError(f"the SQLite file fails its integrity check: {result[0]}")


class _ScriptRunner:
    """Runs an SQL script written to it, one complete statement at a time."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._pending = ""
        self._carry = b""

    def write(self, data: bytes, /) -> int:
        text = (self._carry + data).decode("utf-8", "surrogateescape")
        # Keep an incomplete UTF-8 sequence for the next write.
        lines = text.split("\n")
        tail = lines.pop()
        self._carry = tail.encode("utf-8", "surrogateescape")
        for line in lines:
            self._feed(line + "\n")
        return len(data)

    def _feed(self, line: str) -> None:
        if not self._pending and (not line.strip() or line.startswith("--")):
            return  # a comment or blank line between statements
        self._pending += line
        if sqlite3.complete_statement(self._pending):
            statement, self._pending = self._pending, ""
            self._conn.execute(statement)

    def finish(self) -> None:
        if self._carry:
            self._feed(self._carry.decode("utf-8", "surrogateescape"))
            self._carry = b""
        if self._pending.strip():
            raise CommandError("incremental script ends in the middle of a statement")
