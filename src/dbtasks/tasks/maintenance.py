"""The maintenance task: statistics, space, integrity, health."""

from __future__ import annotations

from typing import TYPE_CHECKING

from dbtasks.tasks.common import db_task

if TYPE_CHECKING:
    from dbtasks.output import Result
    from dbtasks.settings import Settings


@db_task(
    help={
        "vacuum": "also reclaim space (PostgreSQL VACUUM, MySQL OPTIMIZE TABLE, SQLite VACUUM)",
        "no_analyze": "skip refreshing the planner's statistics",
        "no_check": "skip the integrity checks",
    }
)
def maintenance(
    settings: Settings, vacuum: bool = False, no_analyze: bool = False, no_check: bool = False
) -> Result:
    """Refresh statistics, check integrity and report health (optionally reclaim space)."""
    from dbtasks.maintenance import maintain

    return maintain(settings, analyze=not no_analyze, vacuum=vacuum, check=not no_check)
