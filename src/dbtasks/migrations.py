"""Alembic through its Python API, plus what Alembic lacks.

Every command runs the project's own ``env.py`` over a connection dbtasks opened (handed in as
``config.attributes["connection"]``), under a cross-process migration lock. On top of Alembic:
status without running ``env.py``, dry-run SQL, data-loss detection, and readable drift reports.
"""

from __future__ import annotations

import argparse
import io
import logging
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import Script, ScriptDirectory
from alembic.script.revision import RevisionError as AlembicRevisionError
from alembic.util.exc import CommandError as AlembicCommandError
from sqlalchemy import Connection
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError

from dbtasks.dialects import dialect_for
from dbtasks.engine import connect, driver_message
from dbtasks.environment import Confirm, read_environment, refuse_production, require_confirmation
from dbtasks.errors import (
    CommandError,
    ConfigError,
    DbtasksError,
    DriftError,
    MissingDatabaseError,
    RefusedError,
    RevisionError,
)
from dbtasks.settings import Settings

log = logging.getLogger(__name__)

# Statements that lose data when a migration runs them (index and constraint drops do not).
_DATA_LOSS = re.compile(
    r"^\s*(DROP\s+TABLE\b.*"
    r"|ALTER\s+TABLE\s+(?:\"[^\"]*\"|`[^`]*`|\S+)\s+"
    r"DROP\s+(?!(?:INDEX|KEY|FOREIGN|PRIMARY|CONSTRAINT|CHECK)\b).*"
    r"|TRUNCATE\b.*|DELETE\s+FROM\b.*)$",
    re.IGNORECASE | re.MULTILINE,
)


@dataclass(frozen=True)
class Revision:
    """One migration script, as shown by status and history."""

    revision: str
    down_revision: tuple[str, ...]
    message: str
    path: str

    @classmethod
    def from_script(cls, script: Script) -> Revision:
        down = script.down_revision
        downs = () if down is None else (down,) if isinstance(down, str) else tuple(down)
        return cls(script.revision, downs, (script.doc or "").strip(), script.path)

    def as_dict(self) -> dict[str, Any]:
        return {
            "revision": self.revision,
            "down_revision": list(self.down_revision),
            "message": self.message,
        }

    def __str__(self) -> str:
        return f"{self.revision}  {self.message}"


@dataclass
class MigrationResult:
    """What a migration command did (or, with SQL, would do)."""

    action: str
    before: tuple[str, ...]
    after: tuple[str, ...]
    revisions: list[Revision] = field(default_factory=list)
    sql: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "from": list(self.before),
            "to": list(self.after),
            "revisions": [r.as_dict() for r in self.revisions],
            "sql": self.sql,
        }

    def text(self) -> list[str]:
        if self.sql is not None:
            return [self.sql.rstrip()]
        if not self.revisions:
            return [f"{_fmt(self.after)}: already up to date, nothing to {self.action}"]
        verb = "applied" if self.action == "upgrade" else "reverted"
        lines = [
            f"{verb} {len(self.revisions)} revision(s): {_fmt(self.before)} -> {_fmt(self.after)}"
        ]
        return lines + [f"  {r}" for r in self.revisions]


@dataclass
class Status:
    """Where the database stands against the migration scripts."""

    exists: bool
    current: tuple[str, ...]
    heads: tuple[str, ...]
    pending: list[Revision]
    environment: str | None = None

    @property
    def up_to_date(self) -> bool:
        return self.exists and not self.pending and set(self.current) == set(self.heads)

    def as_dict(self) -> dict[str, Any]:
        return {
            "exists": self.exists,
            "current": list(self.current),
            "heads": list(self.heads),
            "pending": [r.as_dict() for r in self.pending],
            "up_to_date": self.up_to_date,
            "environment": self.environment,
        }

    def text(self) -> list[str]:
        if not self.exists:
            lines = ["database: does not exist (db.init creates it)"]
        else:
            lines = [f"current: {_fmt(self.current)}"]
        lines.append(f"head:    {_fmt(self.heads)}")
        if self.environment:
            lines.append(f"environment: {self.environment}")
        if self.pending:
            lines.append(f"pending: {len(self.pending)} revision(s)")
            lines += [f"  {r}" for r in reversed(self.pending)]
        else:
            lines.append("up to date")
        return lines


@dataclass
class History:
    revisions: list[Revision]
    current: tuple[str, ...]
    heads: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "revisions": [
                {
                    **r.as_dict(),
                    "current": r.revision in self.current,
                    "head": r.revision in self.heads,
                }
                for r in self.revisions
            ],
        }

    def text(self) -> list[str]:
        lines = []
        for r in self.revisions:
            marks = [
                m
                for m, on in (
                    ("current", r.revision in self.current),
                    ("head", r.revision in self.heads),
                )
                if on
            ]
            suffix = f"  ({', '.join(marks)})" if marks else ""
            down = ", ".join(r.down_revision) or "<base>"
            lines.append(f"{down} -> {r.revision}{suffix}  {r.message}")
        return lines or ["no revisions"]


@dataclass
class Difference:
    """One way the live schema differs from the models."""

    kind: str
    table: str | None
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "table": self.table, "detail": self.detail}


@dataclass
class Verification:
    differences: list[Difference]
    heads: tuple[str, ...]
    current: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "in_sync": not self.differences,
            "differences": [d.as_dict() for d in self.differences],
            "heads": list(self.heads),
            "current": list(self.current),
        }

    def text(self) -> list[str]:
        if not self.differences:
            return [f"in sync: database at head {_fmt(self.heads)}, schema matches the models"]
        return [f"{len(self.differences)} difference(s):"] + [
            f"  - {d.detail}" for d in self.differences
        ]


@dataclass
class NewRevision:
    revision: str
    path: str
    operations: int

    def as_dict(self) -> dict[str, Any]:
        return {"revision": self.revision, "path": self.path, "operations": self.operations}

    def text(self) -> list[str]:
        return [f"created {self.path} ({self.operations} operation(s))"]


def _fmt(revs: Sequence[str]) -> str:
    return ", ".join(revs) if revs else "<base>"


# --------------------------------------------------------------------------- configuration


def alembic_config(settings: Settings, *, buffer: io.StringIO | None = None) -> Config:
    """Alembic's ``Config`` for the project, with output captured and dbtasks' markers set."""
    if not settings.alembic_ini.is_file():
        raise ConfigError(f"no Alembic configuration at {str(settings.alembic_ini)!r}")
    out = buffer if buffer is not None else io.StringIO()
    # quiet: Alembic's status lines ("Generating ... done") go to sys.stdout, not to ``stdout``;
    # x: env.py may call context.get_x_argument(), which reads it.
    options = argparse.Namespace(quiet=True, x=None)
    cfg = Config(str(settings.alembic_ini), stdout=out, output_buffer=out, cmd_opts=options)
    # env.py reads these: run on our connection, leave logging to dbtasks.
    cfg.attributes["dbtasks"] = True
    cfg.attributes["url"] = settings.url
    return cfg


def script_directory(cfg: Config) -> ScriptDirectory:
    try:
        script = ScriptDirectory.from_config(cfg)
    except AlembicCommandError as exc:
        raise ConfigError(f"migrations folder not found: {exc}") from exc
    if not script.dir or not _exists(script.versions):
        raise ConfigError(f"migrations folder {script.versions!r} does not exist")
    return script


def _exists(path: str) -> bool:
    from pathlib import Path

    return Path(path).is_dir()


@contextmanager
def _alembic_errors(url: URL | None = None) -> Iterator[None]:
    """Alembic's and the driver's errors, as dbtasks errors with one readable line."""
    try:
        yield
    except DbtasksError:
        raise
    # The revision map raises its own RevisionError family (not a CommandError) from
    # ScriptDirectory.iterate_revisions: an unknown or unrelated revision, several heads.
    except (AlembicCommandError, AlembicRevisionError) as exc:
        raise RevisionError(str(exc).splitlines()[0]) from exc
    except DBAPIError as exc:
        raise CommandError(f"migration failed: {driver_message(exc, url)}") from exc


@contextmanager
def _session(settings: Settings, cfg: Config, *, lock: bool) -> Iterator[Connection]:
    """A connection handed to env.py, under the migration lock when ``lock``."""
    dialect = dialect_for(settings.url)
    timeout = settings.connect_timeout
    with connect(settings.url, timeout=timeout) as conn:
        cfg.attributes["connection"] = conn
        if not lock:
            yield conn
            return
        with (
            connect(settings.url, timeout=timeout, autocommit=True) as lock_conn,
            dialect.migration_lock(lock_conn, settings.database, timeout=max(timeout, 30)),
        ):
            yield conn


def _current(conn: Connection) -> tuple[str, ...]:
    heads = MigrationContext.configure(conn).get_current_heads()
    conn.commit()  # reading autobegan a transaction; let env.py begin its own
    return tuple(heads)


def _revisions(script: ScriptDirectory, upper: Any, lower: Any) -> list[Revision]:
    with _alembic_errors():
        return [Revision.from_script(s) for s in script.iterate_revisions(upper, lower)]


def _pending(script: ScriptDirectory, current: tuple[str, ...]) -> list[Revision]:
    """Revisions not applied yet, newest first (as Alembic iterates), on every branch.

    Everything below the heads minus everything below the current revision(s): iterating
    "heads" down to the current revision would miss a branch that does not start above it.
    """
    every = _revisions(script, "heads", "base")
    applied = {r.revision for r in _revisions(script, current, "base")} if current else set()
    return [r for r in every if r.revision not in applied]


def _single_head(script: ScriptDirectory) -> str:
    heads = script.get_heads()
    if len(heads) > 1:
        raise RevisionError(
            f"several heads ({', '.join(heads)}): merge them with 'alembic merge heads' "
            "or name a revision"
        )
    if not heads:
        raise RevisionError("no migration scripts found")
    return heads[0]


def _resolve(script: ScriptDirectory, revision: str) -> str:
    """A revision argument (id, prefix, 'head', 'base') as a full id, or 'base'."""
    if revision == "base":
        return "base"
    if revision in ("head", "heads"):
        return _single_head(script)
    try:
        found = script.get_revision(revision)
    except (AlembicCommandError, AlembicRevisionError) as exc:
        reason = str(exc).splitlines()[0]
        if "Can't locate revision" in reason or "No such revision" in reason:
            raise RevisionError(f"unknown revision {revision!r}") from exc
        raise RevisionError(reason) from exc  # e.g. a prefix that matches several revisions
    if found is None:
        raise RevisionError(f"unknown revision {revision!r}")
    return found.revision


def _ancestry(script: ScriptDirectory, current: tuple[str, ...]) -> list[str]:
    """Revisions from ``current`` down to base, nearest first."""
    if not current:
        return []
    with _alembic_errors():
        return [s.revision for s in script.iterate_revisions(current, "base")]


# Alembic's batch mode ("move and copy", SQLite) rebuilds a table: it copies the rows into
# _alembic_tmp_<name>, drops <name>, and renames the copy. That DROP TABLE loses nothing.
_REBUILT = re.compile(
    r"ALTER\s+TABLE\s+[\"`]?_alembic_tmp_[^\s\"`]+[\"`]?\s+RENAME\s+TO\s+[\"`]?([^\s\"`;]+)",
    re.IGNORECASE,
)
_DROP_TABLE = re.compile(r"DROP\s+TABLE\s+(?:IF\s+EXISTS\s+)?[\"`]?([^\s\"`;]+)", re.IGNORECASE)


def find_data_loss(sql: str) -> list[str]:
    """Statements in rendered migration SQL that drop tables, columns or rows.

    The drop of a table that batch mode rebuilt under the same name is not one of them.
    """
    rebuilt = set(_REBUILT.findall(sql))
    found = []
    for match in _DATA_LOSS.finditer(sql):
        statement = match.group(1).strip().rstrip(";")
        drop = _DROP_TABLE.match(statement)
        if drop and drop.group(1) in rebuilt:
            continue
        found.append(statement)
    return found


def _render_sql(cfg: Config, direction: str, span: str) -> str:
    buffer = cfg.output_buffer
    if not isinstance(buffer, io.StringIO):  # alembic_config always sets one
        raise TypeError("Alembic config without an output buffer")
    buffer.seek(0)
    buffer.truncate()
    with _alembic_errors():
        if direction == "upgrade":
            command.upgrade(cfg, span, sql=True)
        else:
            command.downgrade(cfg, span, sql=True)
    return buffer.getvalue()


# --------------------------------------------------------------------------- commands


def status(settings: Settings) -> Status:
    """Current revision, heads and pending revisions, without running env.py."""
    cfg = alembic_config(settings)
    script = script_directory(cfg)
    heads = tuple(script.get_heads())
    try:
        with connect(settings.url, timeout=settings.connect_timeout) as conn:
            current = _current(conn)
            environment = read_environment(conn)
    except MissingDatabaseError:
        return Status(False, (), heads, _revisions(script, "heads", "base"))
    pending = _pending(script, current)
    return Status(True, current, heads, pending, environment)


def history(settings: Settings) -> History:
    """All revisions, newest first, with the current and head ones marked."""
    cfg = alembic_config(settings)
    script = script_directory(cfg)
    try:
        with connect(settings.url, timeout=settings.connect_timeout) as conn:
            current = _current(conn)
    except MissingDatabaseError:
        current = ()
    revisions = [Revision.from_script(s) for s in script.walk_revisions()]
    return History(revisions, current, tuple(script.get_heads()))


def upgrade(settings: Settings, revision: str = "head", *, sql: bool = False) -> MigrationResult:
    """Apply migrations up to ``revision``; with ``sql`` only render the SQL."""
    cfg = alembic_config(settings)
    script = script_directory(cfg)
    target = _resolve(script, revision)
    if sql:
        try:
            with connect(settings.url, timeout=settings.connect_timeout) as conn:
                current = _current(conn)
        except MissingDatabaseError:
            current = ()
        _refuse_upgrade_below(script, current, target, revision)
        start = ",".join(current) or "base"
        text_sql = _render_sql(cfg, "upgrade", f"{start}:{target}") if start != target else ""
        return MigrationResult(
            "upgrade", current, (target,), _revisions(script, target, current or "base"), text_sql
        )
    with _session(settings, cfg, lock=True) as conn:
        before = _current(conn)
        _refuse_upgrade_below(script, before, target, revision)
        with _alembic_errors(settings.url):
            command.upgrade(cfg, target)
        conn.commit()
        after = _current(conn)
    return MigrationResult(
        "upgrade",
        before,
        after,
        _revisions(script, after or "base", before or "base") if after != before else [],
    )


def _refuse_upgrade_below(
    script: ScriptDirectory, current: tuple[str, ...], target: str, asked: str
) -> None:
    """An upgrade "to" a revision the database is already past is a mistake, not a no-op."""
    if target in current or not current:
        return
    if target == "base" or target in _ancestry(script, current):
        raise RevisionError(
            f"cannot upgrade to {asked!r}: the database is past it, at {_fmt(current)} "
            "(db.downgrade goes back)"
        )


def _downgrade_target(
    script: ScriptDirectory, current: tuple[str, ...], steps: int | None, revision: str | None
) -> str:
    if revision is not None:
        target = _resolve(script, revision)
        if target != "base" and target not in _ancestry(script, current):
            raise RevisionError(
                f"cannot downgrade to {revision!r}: it is not below the current revision "
                f"{_fmt(current)}"
            )
        return target
    steps = 1 if steps is None else steps
    if steps < 1:
        raise ConfigError("--steps must be at least 1")
    if len(current) > 1:
        raise RevisionError(f"database is at several heads ({_fmt(current)}): name a --revision")
    chain = _ancestry(script, current)
    if steps > len(chain):
        raise RevisionError(
            f"cannot downgrade {steps} step(s): the database is {len(chain)} revision(s) above base"
        )
    return chain[steps] if steps < len(chain) else "base"


def downgrade(
    settings: Settings,
    *,
    steps: int | None = None,
    revision: str | None = None,
    sql: bool = False,
    confirm: Confirm,
    force: bool = False,
) -> MigrationResult:
    """Revert migrations: ``steps`` back (default 1) or down to ``revision``."""
    cfg = alembic_config(settings)
    script = script_directory(cfg)
    with _session(settings, cfg, lock=not sql) as conn:
        before = _current(conn)
        target = _downgrade_target(script, before, steps, revision)
        reverted = _revisions(script, before, target) if before else []
        if sql:
            text_sql = (
                _render_sql(cfg, "downgrade", f"{','.join(before)}:{target}") if reverted else ""
            )
            return MigrationResult("downgrade", before, _after(target), reverted, text_sql)
        if not reverted:
            return MigrationResult("downgrade", before, before)
        _refuse_production(settings, conn, "downgrade", force=force)
        _confirm_downgrade(settings, reverted, target, confirm=confirm)
        with _alembic_errors(settings.url):
            command.downgrade(cfg, target)
        conn.commit()
        after = _current(conn)
    return MigrationResult("downgrade", before, after, reverted)


def _after(target: str) -> tuple[str, ...]:
    return () if target == "base" else (target,)


def _refuse_production(settings: Settings, conn: Connection, action: str, *, force: bool) -> None:
    recorded = read_environment(conn)
    conn.commit()  # reading autobegan a transaction; let env.py begin its own
    refuse_production(
        recorded, settings.environment, action=action, database=settings.database, force=force
    )


def _confirm_downgrade(
    settings: Settings, reverted: list[Revision], target: str, *, confirm: Confirm
) -> None:
    names = ", ".join(r.revision for r in reverted)
    require_confirmation(
        confirm,
        f"Revert {len(reverted)} revision(s) ({names}) on {settings.display_url}, "
        f"down to {target}? Data in dropped tables and columns is lost.",
        action="downgrade",
    )


def migrate(
    settings: Settings,
    *,
    target: str | None = None,
    dry_run: bool = False,
    rollback: bool = False,
    force: bool = False,
    confirm: Confirm,
) -> MigrationResult:
    """Move to ``target`` (up or down), or one revision back with ``rollback``.

    Guards: a dry run renders the SQL and changes nothing; statements that lose data (dropped
    tables or columns, deleted rows) are refused unless ``force``; going down asks for
    confirmation and refuses a production database unless ``force``.
    """
    if rollback == (target is not None):
        raise ConfigError("give either --target-version or --rollback")
    cfg = alembic_config(settings)
    script = script_directory(cfg)
    with _session(settings, cfg, lock=not dry_run) as conn:
        before = _current(conn)
        if rollback:
            goal, direction = _downgrade_target(script, before, 1, None), "downgrade"
        else:
            goal = _resolve(script, str(target))
            down = goal == "base" or goal in _ancestry(script, before)[1:]
            direction = "downgrade" if down else "upgrade"
        start = ",".join(before) or "base"
        if goal in before or (goal == "base" and not before):
            return MigrationResult(direction, before, before, [], "" if dry_run else None)
        if direction == "upgrade":
            revisions = _revisions(script, goal, before or "base")
        else:
            revisions = _revisions(script, before, goal)
        sql = _render_sql(cfg, direction, f"{start}:{goal}")
        if dry_run:
            return MigrationResult(direction, before, _after(goal), revisions, sql)
        if direction == "downgrade":  # the production guard speaks first: it is the stronger
            _refuse_production(settings, conn, "migrate", force=force)
        loss = find_data_loss(sql)
        if loss and not force:
            raise RefusedError(
                f"migrate refused: {len(loss)} statement(s) would lose data "
                f"({'; '.join(loss[:3])}{'; ...' if len(loss) > 3 else ''}); add --force to accept",
                details={"statements": loss},
                lines=[f"  - {statement}" for statement in loss],
            )
        if direction == "downgrade":
            _confirm_downgrade(settings, revisions, goal, confirm=confirm)
        with _alembic_errors(settings.url):
            if direction == "upgrade":
                command.upgrade(cfg, goal)
            else:
                command.downgrade(cfg, goal)
        conn.commit()
        after = _current(conn)
    return MigrationResult(direction, before, after, revisions)


# --------------------------------------------------------------------------- schema checks


def _run_env(
    cfg: Config, script: ScriptDirectory, fn: Callable[[Any, MigrationContext], list[Any]]
) -> None:
    from alembic.runtime.environment import EnvironmentContext

    with _alembic_errors(), EnvironmentContext(cfg, script, fn=fn):
        script.run_env()


def verify(settings: Settings) -> Verification:
    """Models against the live schema, a single head, and the database at head.

    Raises :class:`DriftError` (exit 3) carrying the differences when anything is off.
    """
    from alembic.autogenerate import compare_metadata

    cfg = alembic_config(settings)
    script = script_directory(cfg)
    heads = tuple(script.get_heads())
    differences: list[Difference] = []
    if len(heads) > 1:
        differences.append(Difference("heads", None, f"several heads: {_fmt(heads)}"))
    raw: list[Any] = []

    def compare(_rev: Any, context: MigrationContext) -> list[Any]:
        raw.extend(compare_metadata(context, context.opts["target_metadata"]))
        return []

    with _session(settings, cfg, lock=False) as conn:
        current = _current(conn)
        _run_env(cfg, script, compare)
        conn.rollback()
    if set(current) != set(heads):
        pending = _pending(script, current)
        differences.append(
            Difference(
                "revision",
                None,
                f"database at {_fmt(current)}, head is {_fmt(heads)} ({len(pending)} pending)",
            )
        )
    differences += [_describe(d) for d in raw]
    result = Verification(differences, heads, current)
    if differences:
        raise DriftError(
            f"schema drift: {len(differences)} difference(s) between the database and the models",
            details=result.as_dict(),
            lines=result.text()[1:],
        )
    return result


_MODIFIED = {"modify_default": "server default"}


def _render(value: Any) -> str:
    """A type as SQL spells it (``VARCHAR(200)``), anything else as itself."""
    from sqlalchemy.exc import SQLAlchemyError
    from sqlalchemy.types import TypeEngine

    if isinstance(value, TypeEngine):
        try:
            return str(value)
        except SQLAlchemyError:  # a dialect-only type the generic compiler cannot render
            return repr(value)
    text = getattr(value, "text", None)  # a server default: its SQL text
    if text is None and hasattr(value, "arg"):
        text = getattr(value.arg, "text", value.arg)
    return repr(text if text is not None else value)


def _nullability(value: Any) -> str:
    return "NULL" if value else "NOT NULL"


def _describe(diff: Any) -> Difference:
    """Alembic's diff tuples (or lists of them, for column changes) as readable lines."""
    if isinstance(diff, list):
        diff = diff[0]
    kind = diff[0]
    if kind in ("add_table", "remove_table"):
        table = diff[1].name
        where = (
            "in the models, not in the database"
            if kind == "add_table"
            else "in the database, not in the models"
        )
        return Difference(kind, table, f"table {table}: {where}")
    if kind in ("add_column", "remove_column"):
        table, column = diff[2], diff[3].name
        where = (
            "in the models, not in the database"
            if kind == "add_column"
            else "in the database, not in the models"
        )
        return Difference(kind, table, f"column {table}.{column}: {where}")
    if kind.startswith("modify_"):
        table, column = diff[2], diff[3]
        what = _MODIFIED.get(kind, kind.removeprefix("modify_"))
        render = _nullability if kind == "modify_nullable" else _render
        return Difference(
            kind,
            table,
            f"column {table}.{column} {what}: database {render(diff[5])}, models {render(diff[6])}",
        )
    if kind in (
        "add_index",
        "remove_index",
        "add_constraint",
        "remove_constraint",
        "add_fk",
        "remove_fk",
    ):
        obj = diff[1]
        table = getattr(getattr(obj, "table", None), "name", None) or getattr(obj, "parent", None)
        table_name = (
            table if isinstance(table, str) or table is None else getattr(table, "name", None)
        )
        side = (
            "in the models, not in the database"
            if kind.startswith("add")
            else "in the database, not in the models"
        )
        label = kind.split("_", 1)[1].replace("fk", "foreign key")
        return Difference(
            kind, table_name, f"{label} {obj.name or '(unnamed)'} on {table_name}: {side}"
        )
    return Difference(kind, None, " ".join(str(p) for p in diff))


def create_migration(settings: Settings, message: str, *, empty: bool = False) -> NewRevision:
    """Autogenerate a revision from the models against the live database.

    Refuses to write a revision with no operations unless ``empty`` (a hand-written one).
    """
    if not message.strip():
        raise ConfigError("a migration needs a message (-m 'what changed')")
    cfg = alembic_config(settings)
    script = script_directory(cfg)
    found: dict[str, int] = {}

    def keep_or_drop(_context: Any, _revision: Any, directives: list[Any]) -> None:
        ops = directives[0].upgrade_ops
        found["operations"] = len(ops.ops)
        if ops.is_empty() and not empty:
            directives[:] = []

    with _session(settings, cfg, lock=True) as conn:
        current = _current(conn)
        heads = tuple(script.get_heads())
        if not empty and set(current) != set(heads):
            raise RevisionError(
                f"database at {_fmt(current)} is not at head {_fmt(heads)}: "
                "run db.upgrade before create-migration"
            )
        with _alembic_errors():
            created = command.revision(
                cfg,
                message=message,
                autogenerate=not empty,
                process_revision_directives=keep_or_drop,
            )
        conn.rollback()
    if created is None or isinstance(created, list):
        raise CommandError(
            "no changes between the models and the database: nothing written "
            "(--empty writes a revision to fill in by hand)"
        )
    log.info("created revision %s", created.revision)
    return NewRevision(created.revision, created.path, found.get("operations", 0))
