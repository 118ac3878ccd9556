"""MySQL and MariaDB: databases are schemas, managed from a connection with no default schema."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, bindparam, text
from sqlalchemy.engine import URL

from dbtasks.dialects.base import (
    Dialect,
    DumpSpec,
    Health,
    Session,
    Snapshot,
    TableStats,
    Tool,
    run_literal,
)
from dbtasks.errors import CommandError

if TYPE_CHECKING:
    from dbtasks.backup.formats.base import DumpFormat
    from dbtasks.runners.base import ReadStream, Runner, WriteStream


def _lift_io_timeouts(dbapi_connection: Any, _record: Any) -> None:
    """Pool "connect" listener: the handshake is done; statements may take as long as they take.

    PyMySQL has no public setter; it re-reads these attributes before every read and write.
    """
    if hasattr(dbapi_connection, "_read_timeout"):
        dbapi_connection._read_timeout = None  # see docstring
        dbapi_connection._write_timeout = None


class MySQLDialect(Dialect):
    name = "mysql"
    compose_service = "mysql"

    def engine_options(self, timeout: int) -> dict[str, Any]:
        # PyMySQL's connect_timeout covers only the TCP connect: a peer that accepts and then
        # says nothing (a proxy, a stuck server) would hang the handshake for ever. Bound every
        # read and write by the timeout until the connection is up, then lift the bound, so
        # that a long migration statement is not cut off.
        return {
            "connect_args": {
                "connect_timeout": timeout,
                "read_timeout": timeout,
                "write_timeout": timeout,
                "charset": "utf8mb4",
            },
            "pool_events": [(_lift_io_timeouts, "connect")],
        }

    def is_missing_database(self, exc: Exception) -> bool:
        orig = getattr(exc, "orig", None)
        return bool(orig and orig.args and orig.args[0] == 1049)  # ER_BAD_DB_ERROR

    def _admin(self, url: URL, timeout: int) -> Any:
        from dbtasks.engine import connect

        # URL.set(database=None) keeps the old name; NamedTuple._replace clears it.
        return connect(url._replace(database=None), timeout=timeout, autocommit=True)

    def database_exists(self, url: URL, timeout: int) -> bool:
        with self._admin(url, timeout) as conn:
            found = conn.execute(
                text("SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = :name"),
                {"name": url.database},
            ).first()
        return found is not None

    def create_database(self, url: URL, timeout: int) -> None:
        with self._admin(url, timeout) as conn:
            run_literal(
                conn,
                f"CREATE DATABASE IF NOT EXISTS {self.quote(conn, url.database or '')} "
                "CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci",
            )

    def drop_database(self, url: URL, timeout: int) -> None:
        with self._admin(url, timeout) as conn:
            run_literal(conn, f"DROP DATABASE IF EXISTS {self.quote(conn, url.database or '')}")

    def sessions(self, url: URL, timeout: int) -> list[Session]:
        with self._admin(url, timeout) as conn:
            rows = conn.execute(
                text(
                    "SELECT ID, USER, HOST, COMMAND FROM information_schema.PROCESSLIST "
                    "WHERE DB = :name AND ID <> CONNECTION_ID()"
                ),
                {"name": url.database},
            ).all()
        return [Session(int(r[0]), r[1] or "", "", r[2] or "", r[3] or "") for r in rows]

    def terminate_sessions(self, url: URL, timeout: int, sessions: list[Session]) -> None:
        with self._admin(url, timeout) as conn:
            for session in sessions:
                run_literal(conn, f"KILL {int(session.pid)}")

    @contextmanager
    def migration_lock(self, conn: Connection, name: str, timeout: int) -> Iterator[None]:
        lock = f"dbtasks:{name}"[:64]
        got = conn.execute(text("SELECT GET_LOCK(:n, :t)"), {"n": lock, "t": timeout}).scalar()
        if got != 1:
            raise CommandError(f"another migration holds the lock on {name!r} (waited {timeout} s)")
        try:
            yield
        finally:
            conn.execute(text("SELECT RELEASE_LOCK(:n)"), {"n": lock})

    def server_version(self, conn: Connection) -> str:
        return str(conn.execute(text("SELECT VERSION()")).scalar_one())

    def _table_command(
        self, conn: Connection, verb: str, tables: list[str]
    ) -> tuple[str, list[Any]]:
        """``ANALYZE/OPTIMIZE/CHECK TABLE a, b``: returns the statement and its status rows."""
        if not tables:
            return "", []
        statement = f"{verb} TABLE " + ", ".join(self.quote(conn, t) for t in tables)
        return statement, list(run_literal(conn, statement).all())

    def analyze(self, conn: Connection, tables: list[str]) -> list[str]:
        statement, _ = self._table_command(conn, "ANALYZE", tables)
        return [statement] if statement else []

    def vacuum(self, conn: Connection, tables: list[str]) -> list[str]:
        # InnoDB answers OPTIMIZE with "doing recreate + analyze instead": an online rebuild.
        statement, _ = self._table_command(conn, "OPTIMIZE", tables)
        return [statement] if statement else []

    def integrity_problems(self, conn: Connection, tables: list[str]) -> list[str]:
        _, rows = self._table_command(conn, "CHECK", tables)
        # Rows: Table, Op, Msg_type, Msg_text; a healthy table ends with status OK.
        return [
            f"{r[0]}: {r[3]}"
            for r in rows
            if str(r[2]).lower() == "error" or (str(r[2]).lower() == "status" and str(r[3]) != "OK")
        ]

    def health(self, conn: Connection) -> Health:
        rows = conn.execute(
            text(
                "SELECT TABLE_NAME, TABLE_ROWS, DATA_LENGTH, INDEX_LENGTH, DATA_FREE, ENGINE "
                "FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() "
                "AND TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_NAME"
            )
        ).all()
        tables = [
            TableStats(
                r[0],
                int(r[1] or 0),
                int(r[2] or 0) + int(r[3] or 0),
                {"free_bytes": int(r[4] or 0), "engine": r[5]},
            )
            for r in rows
        ]
        threads = conn.execute(text("SHOW GLOBAL STATUS LIKE 'Threads_connected'")).one()
        return Health(
            sum(t.total_bytes or 0 for t in tables),
            tables,
            {
                "connections": int(threads[1]),
                "reclaimable_bytes": sum(t.extra["free_bytes"] for t in tables),
            },
        )

    # Backups: mariadb-dump (or mysqldump) in one consistent transaction, with routines,
    # triggers and events, restored and incremental scripts run with the mariadb client.
    # Credentials go in a 0600 --defaults-extra-file, never argv. MySQL cannot hand its
    # snapshot to another session, so row counts are read from the dump stream itself.

    dump_suffix = ".sql"

    def backup_tool(self, runner: Runner, server_version: str) -> Tool:
        return _my_tool(runner, ("mariadb-dump", "mysqldump"))

    def restore_tools(
        self, runner: Runner, dump_tool: dict[str, str], *, deltas: bool
    ) -> list[Tool]:
        return [_my_tool(runner, ("mariadb", "mysql"))]

    @contextmanager
    def backup_snapshot(self, url: URL, timeout: int, workdir: Path) -> Iterator[Snapshot]:
        from dbtasks.engine import connect

        with connect(url, timeout=timeout) as conn:
            run_literal(conn, "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
            try:
                yield Snapshot(conn, rows_from_dump=True)
            finally:
                conn.rollback()

    def backup_tables(self, conn: Connection) -> list[str]:
        rows = conn.execute(
            text(
                "SELECT TABLE_NAME FROM information_schema.TABLES "
                "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_TYPE = 'BASE TABLE' ORDER BY 1"
            )
        ).scalars()
        return [str(r) for r in rows]

    def estimated_dump_size(self, conn: Connection, tables: list[str]) -> int | None:
        size = conn.execute(
            text(
                "SELECT COALESCE(SUM(DATA_LENGTH), 0) FROM information_schema.TABLES "
                "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME IN :names"
            ).bindparams(bindparam("names", expanding=True)),
            {"names": tables or [""]},
        ).scalar_one()
        return int(size)

    @contextmanager
    def dump(
        self, url: URL, spec: DumpSpec, runner: Runner, snapshot: Snapshot
    ) -> Iterator[ReadStream]:
        database = _database(url)
        tool = self.backup_tool(runner, "").path
        with _options_file(url, runner) as options:
            argv = [
                tool,
                f"--defaults-extra-file={options}",
                "--single-transaction",
                "--quick",
                "--routines",
                "--triggers",
                "--events",
                "--hex-blob",
                "--default-character-set=utf8mb4",
                "--no-tablespaces",
            ]
            if spec.schema_only:
                argv.append("--no-data")
            argv += [f"--ignore-table={database}.{t}" for t in spec.exclude_tables]
            argv += [f"--ignore-table-data={database}.{t}" for t in spec.exclude_data]
            with runner.reading([*argv, database]) as stream:
                yield stream

    @contextmanager
    def restore_dump(self, url: URL, runner: Runner, timeout: int) -> Iterator[WriteStream]:
        database = _database(url)
        tool = _my_tool(runner, ("mariadb", "mysql")).path
        with _options_file(url, runner) as options:
            argv = [
                tool,
                f"--defaults-extra-file={options}",
                "--default-character-set=utf8mb4",
                "--binary-mode",
                database,
            ]
            with runner.writing(argv) as stream:
                yield stream

    @contextmanager
    def check_dump(self, runner: Runner) -> Iterator[WriteStream]:
        checker = _TrailerCheck()
        yield checker
        checker.check()

    @contextmanager
    def apply_delta(self, url: URL, runner: Runner, timeout: int) -> Iterator[WriteStream]:
        with self.restore_dump(url, runner, timeout) as stream:
            yield stream

    def backup_format(self) -> DumpFormat:
        from dbtasks.backup.formats.sqldump import SqlDumpFormat

        return SqlDumpFormat()


class _TrailerCheck:
    """Reads a dump to its end: complete only with mariadb-dump's closing comment."""

    def __init__(self) -> None:
        self._tail = b""
        self.size = 0

    def write(self, data: bytes, /) -> int:
        self._tail = (self._tail + data[-512:])[-512:]
        self.size += len(data)
        return len(data)

    def check(self) -> None:
        if b"\n-- Dump completed" not in self._tail:
            raise CommandError("the SQL dump is incomplete: it lacks the dump's closing line")


def _my_tool(runner: Runner, names: tuple[str, ...]) -> Tool:
    """The first of ``names`` installed (MariaDB's name first), with its version."""
    for name in names:
        path = runner.which(name)
        if path is None:
            continue
        out = runner.run([path, "--version"]).text
        match = re.search(r"Distrib ([\w.-]+)|Ver (\d[\w.-]*)", out)
        version = next((g for g in match.groups() if g), "") if match else out.strip()
        return Tool(name, path, version.rstrip(","))
    raise CommandError(
        f"{' or '.join(names)} not found: install the MariaDB or MySQL client tools "
        "(mariadb-client)"
    )


def _database(url: URL) -> str:
    name = url.database or ""
    if name.startswith("-"):
        # The tools take the database as an argument; a leading dash would be an option.
        raise CommandError(f"cannot back up or restore a database named {name!r} (leading '-')")
    return name


def _option_value(value: str) -> str:
    """A value for a MySQL option file: double-quoted, with its escapes."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


@contextmanager
def _options_file(url: URL, runner: Runner) -> Iterator[str]:
    """A 0600 ``[client]`` option file with the connection and password for the tools."""
    lines = ["[client]"]
    if url.username:
        lines.append(f"user={_option_value(url.username)}")
    if url.password:
        lines.append(f"password={_option_value(url.password)}")
    if url.host:
        lines.append(f"host={_option_value(url.host)}")
    if url.port:
        lines.append(f"port={int(url.port)}")
    socket = url.query.get("unix_socket")
    if isinstance(socket, str):
        lines.append(f"socket={_option_value(socket)}")
    with runner.secret_file(("\n".join(lines) + "\n").encode()) as path:
        yield path
