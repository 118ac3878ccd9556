"""Upkeep: planner statistics, space reclamation, integrity checks, and health figures.

Everything here is safe on a live database: ANALYZE, PostgreSQL's plain (non-FULL) VACUUM,
InnoDB's online OPTIMIZE, SQLite's VACUUM (which briefly takes the write lock).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from dbtasks.dialects import dialect_for
from dbtasks.dialects.base import Health
from dbtasks.engine import connect
from dbtasks.errors import CommandError
from dbtasks.output import human_size
from dbtasks.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class Step:
    name: str
    seconds: float
    statements: list[str]

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "seconds": round(self.seconds, 3), "statements": self.statements}


@dataclass
class MaintenanceResult:
    before: Health
    after: Health
    steps: list[Step] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "steps": [s.as_dict() for s in self.steps],
            "problems": self.problems,
            "size_before": self.before.size_bytes,
            "health": self.after.as_dict(),
        }

    def text(self) -> list[str]:
        lines = [f"{s.name}: done in {s.seconds:.2f} s" for s in self.steps]
        if any(s.name == "check" for s in self.steps) and not self.problems:
            lines.append("check: no problems found")
        lines.append(
            f"size: {human_size(self.before.size_bytes)} -> {human_size(self.after.size_bytes)}"
        )
        for key, value in self.after.details.items():
            if value is not None:
                shown = human_size(value) if key.endswith("_bytes") else value
                lines.append(f"{key.replace('_', ' ')}: {shown}")
        width = max((len(t.name) for t in self.after.tables), default=5)
        lines.append(f"{'table':<{width}}  {'rows':>10}  {'size':>10}")
        for t in self.after.tables:
            size = human_size(t.total_bytes) if t.total_bytes is not None else "-"
            lines.append(f"{t.name:<{width}}  {t.rows:>10}  {size:>10}")
        return lines


def maintain(
    settings: Settings, *, analyze: bool = True, vacuum: bool = False, check: bool = True
) -> MaintenanceResult:
    """Run the chosen upkeep steps, then report health figures.

    Integrity problems raise :class:`CommandError` (exit 1) carrying the full result.
    """
    dialect = dialect_for(settings.url)
    with connect(settings.url, timeout=settings.connect_timeout, autocommit=True) as conn:
        tables = dialect.table_names(conn)
        before = dialect.health(conn)
        steps: list[Step] = []
        problems: list[str] = []
        # VACUUM (ANALYZE) on PostgreSQL and OPTIMIZE on InnoDB analyze too: one pass, not two.
        operations = {"vacuum": dialect.vacuum} if vacuum else {}
        if analyze and not vacuum:
            operations["analyze"] = dialect.analyze
        if check:
            operations["check"] = dialect.integrity_problems
        for name, operation in operations.items():
            began = time.monotonic()
            log.info("%s: %d table(s)", name, len(tables))
            output = operation(conn, tables)
            if name == "check":
                problems, output = output, []
            steps.append(Step(name, time.monotonic() - began, output))
        after = dialect.health(conn)
    result = MaintenanceResult(before, after, steps, problems)
    if problems:
        raise CommandError(
            f"integrity check found {len(problems)} problem(s)",
            details=result.as_dict(),
            lines=[f"  - {p}" for p in problems],
        )
    return result
