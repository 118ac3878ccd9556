"""The interface every engine module implements, with the parts that are the same for all."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, CursorResult, inspect
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError

from dbtasks.errors import CommandError

if TYPE_CHECKING:
    from dbtasks.backup.formats.base import DumpFormat
    from dbtasks.runners.base import ReadStream, Runner, WriteStream


def run_literal(conn: Connection, statement: str) -> CursorResult[*tuple[Any, ...]]:
    """Run SQL exactly as written: no bind-parameter parsing, so ':' and '%' in quoted names
    stay literal on every driver. Driver errors become :class:`CommandError`."""
    from dbtasks.engine import driver_message

    try:
        return conn.execution_options(no_parameters=True).exec_driver_sql(statement)
    except DBAPIError as exc:
        raise CommandError(driver_message(exc, conn.engine.url)) from exc


@dataclass(frozen=True)
class Session:
    """Another connection to a database (reported before a drop)."""

    pid: int
    user: str
    application: str
    client: str
    state: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        app = f" ({self.application})" if self.application else ""
        return f"pid {self.pid} user {self.user}{app} from {self.client or 'local'}, {self.state}"


@dataclass(frozen=True)
class TableStats:
    """Size and upkeep figures of one table (estimates where the engine keeps them)."""

    name: str
    rows: int
    total_bytes: int | None
    extra: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "rows": self.rows, "total_bytes": self.total_bytes, **self.extra}


@dataclass(frozen=True)
class Health:
    """Database-wide figures for ``db.maintenance``."""

    size_bytes: int
    tables: list[TableStats]
    details: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {
            "size_bytes": self.size_bytes,
            "tables": [t.as_dict() for t in self.tables],
            **self.details,
        }


class Dialect(ABC):
    """Engine-specific operations. Methods take a URL or a live connection, never settings."""

    #: Backend name as SQLAlchemy spells it.
    name: str
    #: The compose service that usually runs this engine.
    compose_service: str

    @abstractmethod
    def engine_options(self, timeout: int) -> dict[str, Any]:
        """``create_engine`` keyword arguments that bound the connect time."""

    def before_connect(self, url: URL) -> None:  # noqa: B027  # optional hook
        """Refuse early what connecting would get wrong (SQLite would create a missing file)."""

    def is_missing_database(self, exc: Exception) -> bool:
        """Whether a connect error means "the database does not exist"."""
        return False

    @abstractmethod
    def database_exists(self, url: URL, timeout: int) -> bool:
        """Whether the database named by ``url`` exists (connecting elsewhere when needed)."""

    @abstractmethod
    def create_database(self, url: URL, timeout: int) -> None:
        """Create the database named by ``url``; it must not exist yet."""

    @abstractmethod
    def drop_database(self, url: URL, timeout: int) -> None:
        """Drop the database named by ``url``; other sessions must be gone."""

    def sessions(self, url: URL, timeout: int) -> list[Session]:
        """Other sessions connected to the database (engines without a server: none)."""
        return []

    def terminate_sessions(  # noqa: B027  # optional hook: engines without sessions
        self, url: URL, timeout: int, sessions: list[Session]
    ) -> None:
        """End the given sessions."""

    @contextmanager
    def migration_lock(self, conn: Connection, name: str, timeout: int) -> Iterator[None]:
        """Serialise migrations across processes; ``conn`` is a dedicated autocommit connection."""
        yield

    @abstractmethod
    def server_version(self, conn: Connection) -> str:
        """The server's version string."""

    def quote(self, conn: Connection, identifier: str) -> str:
        """Quote an identifier by the engine's own rules, always (not only when "needed").

        For SQL sent with :func:`run_literal` or inside ``text()``. The preparer's own
        ``quote_identifier`` also doubles '%' for drivers with a format paramstyle (psycopg,
        PyMySQL), which is right only for SQL the driver interpolates: sent literally, ``a%b``
        would become a database named ``a%%b`` (``text()`` doubles it again by itself).
        """
        preparer = conn.dialect.identifier_preparer
        escaped = identifier.replace(preparer.escape_quote, preparer.escape_to_quote)
        return f"{preparer.initial_quote}{escaped}{preparer.final_quote}"

    def table_names(self, conn: Connection) -> list[str]:
        """User tables in the connected database, sorted."""
        return sorted(inspect(conn).get_table_names())

    # Maintenance: ``conn`` is an autocommit connection (VACUUM refuses a transaction).

    @abstractmethod
    def analyze(self, conn: Connection, tables: list[str]) -> list[str]:
        """Refresh the planner's statistics; returns the statements run."""

    @abstractmethod
    def vacuum(self, conn: Connection, tables: list[str]) -> list[str]:
        """Reclaim space and defragment (never the table-locking "full" forms)."""

    @abstractmethod
    def integrity_problems(self, conn: Connection, tables: list[str]) -> list[str]:
        """What the engine's own checks find wrong; empty when healthy."""

    @abstractmethod
    def health(self, conn: Connection) -> Health:
        """Sizes, row estimates and upkeep figures."""

    def row_counts(self, conn: Connection, tables: list[str]) -> dict[str, int]:
        """Exact row counts of ``tables``."""
        return {
            t: int(run_literal(conn, f"SELECT COUNT(*) FROM {self.quote(conn, t)}").scalar_one())
            for t in tables
        }

    # Backups (dbtasks.backup). An engine without backup support keeps these defaults.
    # ``runner`` runs the engine's tools; ``url`` is the database as the runner sees it.

    #: File suffix of this engine's dump, before any compression suffix.
    dump_suffix = ".dump"

    def backup_tool(self, runner: Runner, server_version: str) -> Tool:
        """Find the dump tool and check it can dump this server; a clear error if not."""
        raise CommandError(f"backups are not supported on {self.name}")

    def restore_tools(
        self, runner: Runner, dump_tool: dict[str, str], *, deltas: bool
    ) -> list[Tool]:
        """Find the tools a restore needs (``deltas``: also for incremental scripts), checked
        against the tool that made the dump."""
        raise CommandError(f"restores are not supported on {self.name}")

    @contextmanager
    def backup_snapshot(self, url: URL, timeout: int, workdir: Path) -> Iterator[Snapshot]:
        """A consistent view of the database for the dump, its row counts and revision.

        Held open until the dump has finished. ``workdir`` is private scratch space.
        """
        raise CommandError(f"backups are not supported on {self.name}")
        yield  # pragma: no cover  # makes this a generator

    def backup_tables(self, conn: Connection) -> list[str]:
        """The tables a dump holds, named as manifests, exclusions and counts name them."""
        return self.table_names(conn)

    def backup_row_counts(self, conn: Connection, tables: list[str]) -> dict[str, int]:
        """Exact row counts of ``tables`` (named as :meth:`backup_tables` names them)."""
        return self.row_counts(conn, tables)

    def estimated_dump_size(self, conn: Connection, tables: list[str]) -> int | None:
        """About how many bytes the dump of ``tables`` will be (for progress), if known."""
        return None

    @contextmanager
    def dump(
        self, url: URL, spec: DumpSpec, runner: Runner, snapshot: Snapshot
    ) -> Iterator[ReadStream]:
        """The dump of the database as a stream (native tool, uncompressed)."""
        raise CommandError(f"backups are not supported on {self.name}")
        yield  # pragma: no cover  # makes this a generator

    @contextmanager
    def restore_dump(self, url: URL, runner: Runner, timeout: int) -> Iterator[WriteStream]:
        """A stream that loads a dump into the (existing, empty) database ``url``."""
        raise CommandError(f"restores are not supported on {self.name}")
        yield  # pragma: no cover  # makes this a generator

    @contextmanager
    def check_dump(self, runner: Runner) -> Iterator[WriteStream]:
        """A stream that reads a whole dump and fails, on close, unless it is complete."""
        raise CommandError(f"backups are not supported on {self.name}")
        yield  # pragma: no cover  # makes this a generator

    @contextmanager
    def apply_delta(self, url: URL, runner: Runner, timeout: int) -> Iterator[WriteStream]:
        """A stream that runs an incremental backup's delta script against ``url``."""
        raise CommandError(f"incremental backups are not supported on {self.name}")
        yield  # pragma: no cover  # makes this a generator

    def backup_format(self) -> DumpFormat:
        """How to read this engine's dumps row by row and write its delta scripts."""
        raise CommandError(f"incremental backups are not supported on {self.name}")


@dataclass(frozen=True)
class Tool:
    """A native tool a backup or restore runs: where it is and which version."""

    name: str
    path: str
    version: str

    def as_dict(self) -> dict[str, str]:
        return {"name": self.name, "version": self.version}


@dataclass(frozen=True)
class DumpSpec:
    """What a dump holds. Table names are exact, as :meth:`Dialect.backup_tables` names them."""

    schema_only: bool = False
    exclude_tables: tuple[str, ...] = ()
    exclude_data: tuple[str, ...] = ()


@dataclass
class Snapshot:
    """A consistent view of a database, held while it is dumped.

    ``conn`` sees the same data the dump will (SQLite: a private copy of the file); ``token``
    is what the dump tool needs to join the snapshot (PostgreSQL's exported snapshot id).
    ``rows_from_dump`` says the engine cannot share its snapshot with the dump tool, so row
    counts must come from the dump stream itself (MySQL/MariaDB).
    """

    conn: Connection
    token: str | None = None
    path: Path | None = None
    rows_from_dump: bool = False
