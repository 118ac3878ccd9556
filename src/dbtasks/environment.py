"""The environment name recorded in the database itself, and the guards that read it.

Like Rails' ``ar_internal_metadata``: ``init`` stores the environment the database was set up
for, so a destructive task pointed at a production database by a stray ``DATABASE_URL`` is
refused even when the shell running it believes it is in development.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Column, Connection, DateTime, MetaData, String, Table, inspect, select

from dbtasks.errors import RefusedError

TABLE_NAME = "dbtasks_metadata"
PRODUCTION = "production"

_metadata = MetaData()
metadata_table = Table(
    TABLE_NAME,
    _metadata,
    Column("key", String(64), primary_key=True),
    Column("value", String(255), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

#: Asks the user a yes/no question; returns False to cancel. The task layer supplies it.
Confirm = Callable[[str], bool]


def include_object(
    obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
) -> bool:
    """Alembic ``include_object`` hook: dbtasks' own table is not part of the service's schema."""
    return not (type_ == "table" and name == TABLE_NAME)


def record_environment(conn: Connection, environment: str) -> None:
    """Create the metadata table if needed and store the environment name."""
    _metadata.create_all(conn, checkfirst=True)
    now = datetime.now(UTC)
    updated = conn.execute(
        metadata_table.update()
        .where(metadata_table.c.key == "environment")
        .values(value=environment, updated_at=now)
    )
    if not updated.rowcount:
        conn.execute(
            metadata_table.insert().values(key="environment", value=environment, updated_at=now)
        )


def read_environment(conn: Connection) -> str | None:
    """The recorded environment name, or None for a database dbtasks did not initialise."""
    if not inspect(conn).has_table(TABLE_NAME):
        return None
    value = conn.execute(
        select(metadata_table.c.value).where(metadata_table.c.key == "environment")
    ).scalar()
    return None if value is None else str(value)


def refuse_production(
    recorded: str | None, configured: str, *, action: str, database: str, force: bool
) -> None:
    """Refuse ``action`` on a production database (recorded or configured) unless forced."""
    if force:
        return
    for source, name in (("is recorded as", recorded), ("is configured as", configured)):
        if name == PRODUCTION:
            raise RefusedError(
                f"{action} refused: database {database!r} {source} {PRODUCTION!r} "
                "(add --force to override)"
            )


def require_confirmation(confirm: Confirm, question: str, *, action: str) -> None:
    """Ask; a "no" ends the task with :class:`RefusedError`."""
    if not confirm(question):
        raise RefusedError(f"{action} cancelled: not confirmed")
