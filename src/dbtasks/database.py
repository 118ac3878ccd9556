"""The database's life: create and migrate it (init), drop it, and drop-then-init (recreate)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from dbtasks import migrations
from dbtasks.dialects import dialect_for
from dbtasks.dialects.base import Session
from dbtasks.engine import connect
from dbtasks.environment import (
    PRODUCTION,
    Confirm,
    read_environment,
    record_environment,
    refuse_production,
    require_confirmation,
)
from dbtasks.errors import MissingDatabaseError, RefusedError
from dbtasks.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class InitResult:
    database: str
    created: bool
    migration: migrations.MigrationResult
    environment: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "database": self.database,
            "created": self.created,
            "environment": self.environment,
            **self.migration.as_dict(),
        }

    def text(self) -> list[str]:
        head = (
            f"created database {self.database!r}"
            if self.created
            else f"database {self.database!r} exists"
        )
        return [f"{head} ({self.environment})", *self.migration.text()]


@dataclass
class DropResult:
    database: str
    dropped: bool
    terminated: list[Session] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "database": self.database,
            "dropped": self.dropped,
            "terminated_sessions": [s.as_dict() for s in self.terminated],
        }

    def text(self) -> list[str]:
        lines = [f"ended session {s}" for s in self.terminated]
        if self.dropped:
            return [*lines, f"dropped database {self.database!r}"]
        return [*lines, f"database {self.database!r} does not exist: nothing to drop"]


@dataclass
class RecreateResult:
    dropped: DropResult
    init: InitResult

    def as_dict(self) -> dict[str, Any]:
        return {"dropped": self.dropped.as_dict(), **self.init.as_dict()}

    def text(self) -> list[str]:
        return self.dropped.text() + self.init.text()


def init(settings: Settings) -> InitResult:
    """Create the database when missing, apply all migrations, record the environment.

    Safe to repeat: a second run changes nothing and reports the database up to date.
    """
    dialect = dialect_for(settings.url)
    created = False
    try:
        with connect(settings.url, timeout=settings.connect_timeout):
            pass
    except MissingDatabaseError:
        log.info("creating database %r", settings.database)
        dialect.create_database(settings.url, settings.connect_timeout)
        created = True
    result = migrations.upgrade(settings, "head")
    with connect(settings.url, timeout=settings.connect_timeout) as conn:
        recorded = read_environment(conn)
        environment = recorded or settings.environment
        # Marking a database production is always allowed; un-marking it takes a recreate.
        if recorded is None or (settings.environment == PRODUCTION and recorded != PRODUCTION):
            environment = settings.environment
            record_environment(conn, environment)
            conn.commit()
        elif recorded != settings.environment:
            log.warning(
                "database is recorded as %r, configured as %r: keeping %r",
                recorded,
                settings.environment,
                recorded,
            )
    return InitResult(settings.database, created, result, environment)


def _guard(settings: Settings, action: str, *, confirm: Confirm, force: bool) -> bool:
    """Production check and confirmation for a drop; False when there is nothing to drop."""
    try:
        with connect(settings.url, timeout=settings.connect_timeout) as conn:
            recorded = read_environment(conn)
    except MissingDatabaseError:
        return False
    refuse_production(
        recorded, settings.environment, action=action, database=settings.database, force=force
    )
    require_confirmation(
        confirm,
        f"Drop database {settings.database!r} on {settings.display_url} and all its data?",
        action=action,
    )
    return True


def delete(
    settings: Settings,
    *,
    confirm: Confirm,
    force: bool = False,
    terminate: bool = False,
    action: str = "delete-db",
) -> DropResult:
    """Drop the database. Other sessions are reported, and ended only with ``terminate``."""
    if not _guard(settings, action, confirm=confirm, force=force):
        return DropResult(settings.database, dropped=False)
    dialect = dialect_for(settings.url)
    others = dialect.sessions(settings.url, settings.connect_timeout)
    if others and not terminate:
        listing = "; ".join(str(s) for s in others[:5])
        raise RefusedError(
            f"{action} refused: {len(others)} other session(s) connected to "
            f"{settings.database!r} ({listing}); add --terminate to end them",
            details={"sessions": [s.as_dict() for s in others]},
            lines=[f"  - {s}" for s in others],
        )
    if others:
        log.warning("ending %d other session(s)", len(others))
        dialect.terminate_sessions(settings.url, settings.connect_timeout, others)
    dialect.drop_database(settings.url, settings.connect_timeout)
    return DropResult(settings.database, dropped=True, terminated=others)


def recreate(
    settings: Settings, *, confirm: Confirm, force: bool = False, terminate: bool = False
) -> RecreateResult:
    """Drop the database (if it exists), then :func:`init` it from scratch."""
    dropped = delete(settings, confirm=confirm, force=force, terminate=terminate, action="recreate")
    return RecreateResult(dropped, init(settings))
