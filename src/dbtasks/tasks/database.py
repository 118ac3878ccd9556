"""Tasks that create and drop the database: init, recreate, delete-db."""

from __future__ import annotations

from typing import TYPE_CHECKING

from dbtasks.tasks.common import db_task, make_confirm

if TYPE_CHECKING:
    from dbtasks.output import Result
    from dbtasks.settings import Settings

GUARD_HELP = {
    "yes": "do not ask for confirmation (needed when there is no terminal)",
    "force": "also act on a database marked production",
    "terminate": "end other sessions connected to the database instead of refusing",
}


@db_task(
    help={
        "environment": "environment name to record (default: config db.environment, "
        "DBTASKS_ENV, else development)"
    }
)
def init(settings: Settings, environment: str | None = None) -> Result:
    """Create the database if missing and apply all migrations (safe to repeat)."""
    from dataclasses import replace

    from dbtasks import database

    if environment:
        settings = replace(settings, environment=environment)
    return database.init(settings)


@db_task(help=GUARD_HELP)
def recreate(
    settings: Settings, yes: bool = False, force: bool = False, terminate: bool = False
) -> Result:
    """DESTRUCTIVE: drop the database, then init it from scratch."""
    from dbtasks import database

    return database.recreate(settings, confirm=make_confirm(yes), force=force, terminate=terminate)


@db_task(help=GUARD_HELP)
def delete_db(
    settings: Settings, yes: bool = False, force: bool = False, terminate: bool = False
) -> Result:
    """DESTRUCTIVE: drop the database and all its data."""
    from dbtasks import database

    return database.delete(settings, confirm=make_confirm(yes), force=force, terminate=terminate)
