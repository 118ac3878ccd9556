"""PostgreSQL: databases are created and dropped from the ``postgres`` maintenance database."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, text
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

MAINTENANCE_DB = "postgres"


class PostgreSQLDialect(Dialect):
    name = "postgresql"
    compose_service = "postgres"

    def engine_options(self, timeout: int) -> dict[str, Any]:
        return {"connect_args": {"connect_timeout": timeout, "application_name": "dbtasks"}}

    def is_missing_database(self, exc: Exception) -> bool:
        # SQLSTATE 3D000 invalid_catalog_name; psycopg reports it on the connect error.
        return getattr(getattr(exc, "orig", None), "sqlstate", None) == "3D000" or (
            "does not exist" in str(exc) and "database" in str(exc)
        )

    def _admin(self, url: URL, timeout: int) -> Any:
        from dbtasks.engine import connect

        return connect(url.set(database=MAINTENANCE_DB), timeout=timeout, autocommit=True)

    def database_exists(self, url: URL, timeout: int) -> bool:
        with self._admin(url, timeout) as conn:
            found = conn.execute(
                text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": url.database}
            ).first()
        return found is not None

    def create_database(self, url: URL, timeout: int) -> None:
        with self._admin(url, timeout) as conn:
            run_literal(conn, f"CREATE DATABASE {self.quote(conn, url.database or '')}")

    def drop_database(self, url: URL, timeout: int) -> None:
        with self._admin(url, timeout) as conn:
            run_literal(conn, f"DROP DATABASE IF EXISTS {self.quote(conn, url.database or '')}")

    def sessions(self, url: URL, timeout: int) -> list[Session]:
        with self._admin(url, timeout) as conn:
            rows = conn.execute(
                text(
                    "SELECT pid, usename, application_name, client_addr::text, state "
                    "FROM pg_stat_activity WHERE datname = :name AND pid <> pg_backend_pid()"
                ),
                {"name": url.database},
            ).all()
        return [Session(r[0], r[1] or "", r[2] or "", r[3] or "", r[4] or "") for r in rows]

    def terminate_sessions(self, url: URL, timeout: int, sessions: list[Session]) -> None:
        pids = [session.pid for session in sessions]
        with self._admin(url, timeout) as conn:
            for pid in pids:
                conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            # pg_terminate_backend only signals the backend: wait until it is gone, or the
            # DROP DATABASE that follows fails with "is being accessed by other users".
            alive = text("SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(:pids)")
            deadline = time.monotonic() + timeout
            while conn.execute(alive, {"pids": pids}).scalar_one() and (
                time.monotonic() < deadline
            ):
                time.sleep(0.05)

    @contextmanager
    def migration_lock(self, conn: Connection, name: str, timeout: int) -> Iterator[None]:
        # A session-level advisory lock on a dedicated connection: held until released or the
        # connection ends (so a crashed migration never leaves it behind).
        key = conn.execute(text("SELECT hashtext(:n)"), {"n": f"dbtasks:{name}"}).scalar_one()
        deadline = time.monotonic() + timeout
        while not conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar_one():
            if time.monotonic() > deadline:
                raise CommandError(
                    f"another migration holds the lock on {name!r} (waited {timeout} s)"
                )
            time.sleep(0.2)
        try:
            yield
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})

    def server_version(self, conn: Connection) -> str:
        return str(conn.execute(text("SHOW server_version")).scalar_one())

    def analyze(self, conn: Connection, tables: list[str]) -> list[str]:
        statement = "ANALYZE"
        run_literal(conn, statement)
        return [statement]

    def vacuum(self, conn: Connection, tables: list[str]) -> list[str]:
        statement = "VACUUM (ANALYZE)"
        run_literal(conn, statement)
        return [statement]

    def integrity_problems(self, conn: Connection, tables: list[str]) -> list[str]:
        invalid = conn.execute(
            text(
                "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE NOT i.indisvalid AND n.nspname = current_schema()"
            )
        ).scalars()
        unvalidated = conn.execute(
            text(
                "SELECT conname FROM pg_constraint WHERE NOT convalidated "
                "AND connamespace = current_schema()::regnamespace"
            )
        ).scalars()
        return [
            f"index {name} is invalid (a failed CREATE INDEX CONCURRENTLY?)" for name in invalid
        ] + [f"constraint {name} is not validated" for name in unvalidated]

    def health(self, conn: Connection) -> Health:
        size = int(conn.execute(text("SELECT pg_database_size(current_database())")).scalar_one())
        rows = conn.execute(
            text(
                "SELECT relname, n_live_tup, n_dead_tup, pg_total_relation_size(relid), "
                "greatest(last_vacuum, last_autovacuum), greatest(last_analyze, last_autoanalyze) "
                "FROM pg_stat_user_tables WHERE schemaname = current_schema() ORDER BY relname"
            )
        ).all()
        tables = [
            TableStats(
                r[0],
                int(r[1]),
                int(r[3]),
                {"dead_rows": int(r[2]), "last_vacuum": r[4], "last_analyze": r[5]},
            )
            for r in rows
        ]
        db = conn.execute(
            text(
                "SELECT numbackends, blks_hit, blks_read FROM pg_stat_database "
                "WHERE datname = current_database()"
            )
        ).one()
        hits, reads = int(db[1] or 0), int(db[2] or 0)
        ratio = round(hits / (hits + reads), 4) if hits + reads else None
        return Health(size, tables, {"connections": int(db[0]), "cache_hit_ratio": ratio})

    # Backups: pg_dump's custom format, uncompressed (dbtasks compresses in its own process,
    # concurrently), restored with pg_restore; incremental scripts run with psql. Connection
    # details travel in PG* variables and the password in a 0600 PGPASSFILE, never argv.

    dump_suffix = ".dump"

    def backup_tool(self, runner: Runner, server_version: str) -> Tool:
        return _pg_tool(runner, "pg_dump", _major(server_version), "a PostgreSQL server")

    def restore_tools(
        self, runner: Runner, dump_tool: dict[str, str], *, deltas: bool
    ) -> list[Tool]:
        archive = f"an archive made by pg_dump {dump_tool.get('version', '?')}"
        need = _major(dump_tool.get("version", "0"))
        tools = [_pg_tool(runner, "pg_restore", need, archive)]
        if deltas:
            tools.append(_pg_tool(runner, "psql", 0, "incremental scripts"))
        return tools

    @contextmanager
    def backup_snapshot(self, url: URL, timeout: int, workdir: Path) -> Iterator[Snapshot]:
        from dbtasks.engine import connect

        # pg_dump joins this transaction's snapshot (--snapshot), so the row counts, the
        # Alembic revision and the dump all see the same data.
        with connect(url, timeout=timeout) as conn:
            conn.execution_options(isolation_level="REPEATABLE READ")
            conn.execute(text("SET TRANSACTION READ ONLY"))
            token = str(conn.execute(text("SELECT pg_export_snapshot()")).scalar_one())
            try:
                yield Snapshot(conn, token=token)
            finally:
                conn.rollback()

    def backup_tables(self, conn: Connection) -> list[str]:
        rows = conn.execute(
            text(
                "SELECT n.nspname, c.relname FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE c.relkind = 'r' AND n.nspname <> 'information_schema' "
                "AND n.nspname NOT LIKE 'pg\\_%' "
                "AND NOT EXISTS (SELECT 1 FROM pg_depend d "
                "  WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid "
                "  AND d.deptype = 'e') "
                "ORDER BY 1, 2"
            )
        ).all()
        return [f"{r[0]}.{r[1]}" for r in rows]

    def backup_row_counts(self, conn: Connection, tables: list[str]) -> dict[str, int]:
        counts: dict[str, int] = {}
        for start in range(0, len(tables), 100):
            batch = tables[start : start + 100]
            # ONLY: a parent's count must not include its inheritance children's rows.
            selects = [
                f"SELECT {i}, count(*) FROM ONLY {self._qualified(conn, t)}"
                for i, t in enumerate(batch)
            ]
            for i, n in run_literal(conn, " UNION ALL ".join(selects)).all():
                counts[batch[int(i)]] = int(n)
        return counts

    def _qualified(self, conn: Connection, name: str) -> str:
        schema, _, table = name.partition(".")
        return f"{self.quote(conn, schema)}.{self.quote(conn, table)}"

    def estimated_dump_size(self, conn: Connection, tables: list[str]) -> int | None:
        size = conn.execute(
            text(
                "SELECT coalesce(sum(pg_table_size(c.oid)), 0) FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname || '.' || c.relname = ANY(:names)"
            ),
            {"names": tables},
        ).scalar_one()
        return int(size)

    @contextmanager
    def dump(
        self, url: URL, spec: DumpSpec, runner: Runner, snapshot: Snapshot
    ) -> Iterator[ReadStream]:
        argv = ["pg_dump", "--format=custom", "--compress=0", "--no-password"]
        if snapshot.token:
            argv.append(f"--snapshot={snapshot.token}")
        if spec.schema_only:
            argv.append("--schema-only")
        argv += [f"--exclude-table={_pattern(t)}" for t in spec.exclude_tables]
        argv += [f"--exclude-table-data={_pattern(t)}" for t in spec.exclude_data]
        with _pg_env(url, runner) as env, runner.reading(argv, env=env) as stream:
            yield stream

    @contextmanager
    def restore_dump(self, url: URL, runner: Runner, timeout: int) -> Iterator[WriteStream]:
        # --no-owner/--no-acl: the restoring role owns what it restores, whatever roles the
        # source server had (the archive keeps them for a by-hand pg_restore).
        argv = ["pg_restore", "--exit-on-error", "--no-owner", "--no-acl", "--no-password"]
        argv += ["--dbname", _conninfo(url.database or "")]
        with _pg_env(url, runner) as env, runner.writing(argv, env=env) as stream:
            yield stream

    @contextmanager
    def check_dump(self, runner: Runner) -> Iterator[WriteStream]:
        # Rendering the archive as a script reads every data block: a truncated or damaged
        # archive fails here, not only its table of contents.
        with runner.writing(["pg_restore", "--file=/dev/null"]) as stream:
            yield stream

    @contextmanager
    def apply_delta(self, url: URL, runner: Runner, timeout: int) -> Iterator[WriteStream]:
        argv = ["psql", "--no-psqlrc", "--quiet", "--set=ON_ERROR_STOP=1", "--no-password"]
        argv += ["--dbname", _conninfo(url.database or "")]
        with _pg_env(url, runner) as env, runner.writing(argv, env=env) as stream:
            yield stream

    def backup_format(self) -> DumpFormat:
        from dbtasks.backup.formats.pgcustom import PgCustomFormat

        return PgCustomFormat()


_VERSION = re.compile(r"\(PostgreSQL\)\s+(\d+)(?:\.(\d+))?")
#: URL query parameters that libpq also reads from the environment.
_QUERY_ENV = {
    "host": "PGHOST",
    "port": "PGPORT",
    "sslmode": "PGSSLMODE",
    "sslrootcert": "PGSSLROOTCERT",
    "sslcert": "PGSSLCERT",
    "sslkey": "PGSSLKEY",
    "target_session_attrs": "PGTARGETSESSIONATTRS",
}


def _major(version: str) -> int:
    match = re.match(r"\s*(\d+)", version)
    return int(match.group(1)) if match else 0


def _pg_tool(runner: Runner, name: str, need: int, what: str) -> Tool:
    """Find a client tool and check its major version is at least ``need``."""
    package = f"postgresql-client-{need}" if need else "postgresql-client"
    path = runner.which(name)
    if path is None:
        raise CommandError(f"{name} not found: install the PostgreSQL client tools ({package})")
    out = runner.run([path, "--version"]).text
    match = _VERSION.search(out)
    version = f"{match.group(1)}.{match.group(2) or 0}" if match else out.strip()
    if match and int(match.group(1)) < need:
        raise CommandError(
            f"{name} {version} is too old for {what} (version {need}): install {package} or newer"
        )
    return Tool(name, path, version)


@contextmanager
def _pg_env(url: URL, runner: Runner) -> Iterator[dict[str, str]]:
    """libpq's environment for ``url``; the password in a 0600 passfile the runner provides."""
    env = {"PGDATABASE": url.database or "", "PGAPPNAME": "dbtasks", "PGCONNECT_TIMEOUT": "10"}
    if url.host:
        env["PGHOST"] = url.host
    if url.port:
        env["PGPORT"] = str(url.port)
    if url.username:
        env["PGUSER"] = url.username
    for key, var in _QUERY_ENV.items():
        value = url.query.get(key)
        if isinstance(value, str):
            env[var] = value
    if not url.password:
        yield env
        return
    secret = url.password.replace("\\", "\\\\").replace(":", "\\:")
    with runner.secret_file(f"*:*:*:*:{secret}\n".encode()) as passfile:
        yield {**env, "PGPASSFILE": passfile}


def _conninfo(database: str) -> str:
    """``dbname='...'`` for ``--dbname``: a name with ``=`` would otherwise be parsed."""
    escaped = database.replace("\\", "\\\\").replace("'", "\\'")
    return f"dbname='{escaped}'"


def _pattern(name: str) -> str:
    """An exact table for pg_dump's patterns: quoted, so ``*``, ``?`` and case are literal."""
    schema, _, table = name.partition(".")
    return '"{}"."{}"'.format(schema.replace('"', '""'), table.replace('"', '""'))
