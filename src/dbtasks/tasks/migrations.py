"""Tasks over Alembic: create-migration, upgrade, downgrade, migrate, status, history, verify."""

from __future__ import annotations

from typing import TYPE_CHECKING

from dbtasks.tasks.common import db_task, make_confirm

if TYPE_CHECKING:
    from dbtasks.output import Result
    from dbtasks.settings import Settings


@db_task(
    help={
        "message": "what the migration does (becomes the file name's slug)",
        "empty": "write a revision with no operations, to fill in by hand",
    }
)
def create_migration(settings: Settings, message: str = "", empty: bool = False) -> Result:
    """Autogenerate a migration from the models against the live database."""
    from dbtasks import migrations

    return migrations.create_migration(settings, message, empty=empty)


@db_task(
    help={
        "revision": "target revision (default: head)",
        "sql": "print the SQL instead of running it",
    }
)
def upgrade(settings: Settings, revision: str = "head", sql: bool = False) -> Result:
    """Apply pending migrations (to head, or to --revision)."""
    from dbtasks import migrations

    return migrations.upgrade(settings, revision, sql=sql)


@db_task(
    help={
        "steps": "how many revisions to revert (default 1)",
        "revision": "revert down to this revision ('base' reverts all)",
        "sql": "print the SQL instead of running it",
        "yes": "do not ask for confirmation",
        "force": "also act on a database marked production",
    }
)
def downgrade(
    settings: Settings,
    steps: str | None = None,
    revision: str | None = None,
    sql: bool = False,
    yes: bool = False,
    force: bool = False,
) -> Result:
    """DESTRUCTIVE: revert migrations (one step by default)."""
    from dbtasks import migrations
    from dbtasks.errors import ConfigError

    if steps is not None and revision is not None:
        raise ConfigError("give --steps or --revision, not both")
    try:
        count = None if steps is None else int(steps)
    except ValueError:
        raise ConfigError(f"--steps must be a whole number, not {steps!r}") from None
    return migrations.downgrade(
        settings, steps=count, revision=revision, sql=sql, confirm=make_confirm(yes), force=force
    )


@db_task(
    help={
        "target_version": "revision to move to, up or down ('head', 'base', an id)",
        "dry_run": "print the SQL it would run; change nothing",
        "rollback": "go back one revision",
        "force": "accept statements that lose data; act on production",
        "yes": "do not ask for confirmation when going down",
    }
)
def migrate(
    settings: Settings,
    target_version: str | None = None,
    dry_run: bool = False,
    rollback: bool = False,
    force: bool = False,
    yes: bool = False,
) -> Result:
    """Move the database to a target revision, with dry-run and data-loss guards."""
    from dbtasks import migrations

    return migrations.migrate(
        settings,
        target=target_version,
        dry_run=dry_run,
        rollback=rollback,
        force=force,
        confirm=make_confirm(yes),
    )


@db_task(help={"check": "exit 3 when migrations are pending (a CI/deploy gate)"})
def status(settings: Settings, check: bool = False) -> Result:
    """Show the current revision, the head(s) and pending migrations."""
    from dbtasks import migrations
    from dbtasks.errors import DriftError

    result = migrations.status(settings)
    if check and not result.up_to_date:
        raise DriftError(
            f"{len(result.pending)} migration(s) pending",
            details=result.as_dict(),
            lines=result.text(),
        )
    return result


@db_task()
def history(settings: Settings) -> Result:
    """List all migrations, marking the current and head revisions."""
    from dbtasks import migrations

    return migrations.history(settings)


@db_task()
def verify(settings: Settings) -> Result:
    """Check the live schema matches the models and the database is at a single head."""
    from dbtasks import migrations

    return migrations.verify(settings)
