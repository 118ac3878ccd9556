"""The pure parts of dbtasks.migrations: data-loss detection, the diff describer, revision
arithmetic over the repository's own scripts, and how results read."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import (
    Column,
    DefaultClause,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects import postgresql

from dbtasks import migrations
from dbtasks.errors import ConfigError, RevisionError
from dbtasks.migrations import (
    Difference,
    History,
    MigrationResult,
    Revision,
    Status,
    Verification,
    find_data_loss,
)
from dbtasks.settings import load_settings

REPO = Path(__file__).resolve().parents[2]
A, B, C = "a1c3e5f70001", "b2d4f6a80002", "c3e5a7b90003"

# --------------------------------------------------------------------------- find_data_loss


@pytest.mark.parametrize(
    ("sql", "found"),
    [
        ("DROP TABLE runs;", ["DROP TABLE runs"]),
        ("drop table if exists runs;", ["drop table if exists runs"]),
        ("ALTER TABLE runs DROP COLUMN priority;", ["ALTER TABLE runs DROP COLUMN priority"]),
        ("ALTER TABLE runs DROP priority;", ["ALTER TABLE runs DROP priority"]),  # MySQL
        ('ALTER TABLE "run x" DROP COLUMN kind;', ['ALTER TABLE "run x" DROP COLUMN kind']),
        ("ALTER TABLE `a b` DROP COLUMN c;", ["ALTER TABLE `a b` DROP COLUMN c"]),
        ("TRUNCATE runs;", ["TRUNCATE runs"]),
        ("DELETE FROM runs WHERE id > 3;", ["DELETE FROM runs WHERE id > 3"]),
        ("  DROP TABLE runs;", ["DROP TABLE runs"]),
        # Not data: indexes, constraints, keys, types, the version table's bookkeeping.
        ("DROP INDEX ix_runs_status;", []),
        ("DROP INDEX ix_runs_status ON runs;", []),
        ("ALTER TABLE runs DROP INDEX ix;", []),
        ("ALTER TABLE runs DROP KEY ix;", []),
        ("ALTER TABLE runs DROP FOREIGN KEY fk;", []),
        ("ALTER TABLE runs DROP PRIMARY KEY;", []),
        ("ALTER TABLE runs DROP CONSTRAINT uq;", []),
        ("ALTER TABLE runs DROP CHECK ck;", []),
        ("DROP TYPE run_status;", []),
        ("UPDATE alembic_version SET version_num='b2d4f6a80002';", []),
        ("-- Running downgrade c3e5a7b90003 -> b2d4f6a80002", []),
        ("ALTER TABLE runs ADD COLUMN priority INTEGER;", []),
    ],
)  # fmt: skip
def test_find_data_loss(sql: str, found: list[str]) -> None:
    assert find_data_loss(sql) == found


def test_a_batch_rebuild_is_not_data_loss() -> None:
    """SQLite's move-and-copy drops the old table after copying its rows."""
    sql = """
CREATE TABLE _alembic_tmp_agents (id INTEGER NOT NULL);
INSERT INTO _alembic_tmp_agents (id) SELECT agents.id FROM agents;
DROP TABLE agents;
ALTER TABLE _alembic_tmp_agents RENAME TO agents;
DROP TABLE runs;
"""
    assert find_data_loss(sql) == ["DROP TABLE runs"]


def test_data_loss_in_the_repositorys_own_downgrade_sql() -> None:
    sql = """
-- Running downgrade c3e5a7b90003 -> b2d4f6a80002
DROP INDEX ix_runs_status_queued_at;
ALTER TABLE runs DROP COLUMN priority;
DROP INDEX ix_agents_owner_email;
ALTER TABLE agents DROP COLUMN updated_at;
ALTER TABLE agents DROP COLUMN description;
UPDATE alembic_version SET version_num='b2d4f6a80002' WHERE alembic_version.version_num = 'c3e5a7b90003';
"""  # noqa: E501
    assert find_data_loss(sql) == [
        "ALTER TABLE runs DROP COLUMN priority",
        "ALTER TABLE agents DROP COLUMN updated_at",
        "ALTER TABLE agents DROP COLUMN description",
    ]


# --------------------------------------------------------------------------- the diff describer

_md = MetaData()
AGENTS = Table("agents", _md, Column("id", Integer, primary_key=True), Column("name", String(20)))
RUNS = Table(
    "runs",
    _md,
    Column("id", Integer, primary_key=True),
    Column("agent_id", Integer),
    Column("status", String(10)),
    ForeignKeyConstraint(["agent_id"], ["agents.id"], name="fk_runs_agent_id_agents"),
    UniqueConstraint("status", name="uq_runs_status"),
)
IX = Index("ix_runs_status", RUNS.c.status)
FK = next(iter(RUNS.foreign_key_constraints))
UQ = next(c for c in RUNS.constraints if isinstance(c, UniqueConstraint))
EXISTING = {"existing_nullable": True}


@pytest.mark.parametrize(
    ("diff", "kind", "table", "detail"),
    [
        (("add_table", AGENTS), "add_table", "agents",
         "table agents: in the models, not in the database"),
        (("remove_table", RUNS), "remove_table", "runs",
         "table runs: in the database, not in the models"),
        (("add_column", None, "agents", Column("timeout_s", Integer)), "add_column", "agents",
         "column agents.timeout_s: in the models, not in the database"),
        (("remove_column", None, "runs", Column("old", Integer)), "remove_column", "runs",
         "column runs.old: in the database, not in the models"),
        ([("modify_type", None, "agents", "name", EXISTING, String(200), String(20))],
         "modify_type", "agents",
         "column agents.name type: database VARCHAR(200), models VARCHAR(20)"),
        ([("modify_nullable", None, "agents", "name", EXISTING, True, False)],
         "modify_nullable", "agents",
         "column agents.name nullable: database NULL, models NOT NULL"),
        ([("modify_default", None, "runs", "status", EXISTING,
           DefaultClause(text("'queued'")), None)],
         "modify_default", "runs",
         "column runs.status server default: database \"'queued'\", models None"),
        ([("modify_type", None, "runs", "status", EXISTING,
           postgresql.ENUM("a", "b", name="run_status"), String(10))],
         "modify_type", "runs", "column runs.status type: database "),
        (("add_index", IX), "add_index", "runs",
         "index ix_runs_status on runs: in the models, not in the database"),
        (("remove_index", IX), "remove_index", "runs",
         "index ix_runs_status on runs: in the database, not in the models"),
        (("add_constraint", UQ), "add_constraint", "runs",
         "constraint uq_runs_status on runs: in the models, not in the database"),
        (("remove_fk", FK), "remove_fk", "runs",
         "foreign key fk_runs_agent_id_agents on runs: in the database, not in the models"),
        (("add_table_comment", AGENTS, None), "add_table_comment", None, "add_table_comment"),
    ],
)  # fmt: skip
def test_describe(diff: object, kind: str, table: str | None, detail: str) -> None:
    described = migrations._describe(diff)
    assert described.kind == kind
    assert described.table == table
    assert described.detail.startswith(detail)


# --------------------------------------------------------------------------- revision arithmetic


@pytest.fixture(scope="module")
def script() -> ScriptDirectory:
    settings = load_settings({}, environ={}, project_dir=REPO)
    return migrations.script_directory(migrations.alembic_config(settings))


@pytest.mark.parametrize(
    ("current", "steps", "revision", "target"),
    [
        ((C,), None, None, B),
        ((C,), 1, None, B),
        ((C,), 2, None, A),
        ((C,), 3, None, "base"),
        ((B,), 2, None, "base"),
        ((C,), None, A, A),
        ((C,), None, "a1c3", A),
        ((C,), None, "base", "base"),
        ((C,), None, C, C),
    ],
)
def test_downgrade_target(
    script: ScriptDirectory,
    current: tuple[str, ...],
    steps: int | None,
    revision: str | None,
    target: str,
) -> None:
    assert migrations._downgrade_target(script, current, steps, revision) == target


@pytest.mark.parametrize(
    ("current", "steps", "revision", "error", "message"),
    [
        ((C,), 4, None, RevisionError, "cannot downgrade 4 step(s): the database is 3"),
        ((), 1, None, RevisionError, "the database is 0 revision(s) above base"),
        ((C,), 0, None, ConfigError, "--steps must be at least 1"),
        ((A,), None, C, RevisionError, "it is not below the current revision a1c3e5f70001"),
        ((C,), None, "zzz", RevisionError, "unknown revision 'zzz'"),
        ((C, "d4"), 1, None, RevisionError, "several heads"),
    ],
)
def test_downgrade_target_refusals(
    script: ScriptDirectory,
    current: tuple[str, ...],
    steps: int | None,
    revision: str | None,
    error: type[Exception],
    message: str,
) -> None:
    with pytest.raises(error) as caught:
        migrations._downgrade_target(script, current, steps, revision)
    assert message in str(caught.value)


def test_resolve(script: ScriptDirectory) -> None:
    assert migrations._resolve(script, "head") == C
    assert migrations._resolve(script, "heads") == C
    assert migrations._resolve(script, "base") == "base"
    assert migrations._resolve(script, "b2d4") == B
    with pytest.raises(RevisionError, match="unknown revision 'nope'"):
        migrations._resolve(script, "nope")


def test_pending(script: ScriptDirectory) -> None:
    assert [r.revision for r in migrations._pending(script, ())] == [C, B, A]
    assert [r.revision for r in migrations._pending(script, (A,))] == [C, B]
    assert migrations._pending(script, (C,)) == []


def test_refuse_upgrade_below(script: ScriptDirectory) -> None:
    migrations._refuse_upgrade_below(script, (A,), C, "head")
    migrations._refuse_upgrade_below(script, (C,), C, "head")
    migrations._refuse_upgrade_below(script, (), A, A)
    with pytest.raises(RevisionError, match="the database is past it, at c3e5a7b90003"):
        migrations._refuse_upgrade_below(script, (C,), A, A)


# --------------------------------------------------------------------------- results


def _rev(revision: str, down: str | None, message: str) -> Revision:
    return Revision(revision, (down,) if down else (), message, f"{revision}.py")


def test_migration_result_text() -> None:
    revisions = [_rev(C, B, "three"), _rev(B, A, "two")]
    applied = MigrationResult("upgrade", (A,), (C,), revisions)
    assert applied.text() == [f"applied 2 revision(s): {A} -> {C}", f"  {C}  three", f"  {B}  two"]
    reverted = MigrationResult("downgrade", (B,), (), [_rev(B, A, "two")])
    assert reverted.text()[0] == f"reverted 1 revision(s): {B} -> <base>"
    nothing = MigrationResult("upgrade", (C,), (C,))
    assert nothing.text() == [f"{C}: already up to date, nothing to upgrade"]
    sql = MigrationResult("upgrade", (A,), (C,), revisions, "BEGIN;\nCOMMIT;\n\n")
    assert sql.text() == ["BEGIN;\nCOMMIT;"]
    assert applied.as_dict() == {
        "action": "upgrade",
        "from": [A],
        "to": [C],
        "revisions": [
            {"revision": C, "down_revision": [B], "message": "three"},
            {"revision": B, "down_revision": [A], "message": "two"},
        ],
        "sql": None,
    }


def test_status_text_and_up_to_date() -> None:
    pending = [_rev(C, B, "three"), _rev(B, A, "two")]
    behind = Status(True, (A,), (C,), pending, "staging")
    assert not behind.up_to_date
    assert behind.text() == [
        f"current: {A}",
        f"head:    {C}",
        "environment: staging",
        "pending: 2 revision(s)",
        f"  {B}  two",
        f"  {C}  three",
    ]
    assert Status(True, (C,), (C,), []).up_to_date
    missing = Status(False, (), (C,), pending)
    assert not missing.up_to_date
    assert missing.text()[0] == "database: does not exist (db.init creates it)"
    assert Status(True, (C, "d"), ("d", C), []).up_to_date


def test_history_and_verification_text() -> None:
    history = History([_rev(C, B, "three"), _rev(A, None, "one")], (A,), (C,))
    assert history.text() == [f"{B} -> {C}  (head)  three", f"<base> -> {A}  (current)  one"]
    assert History([], (), ()).text() == ["no revisions"]
    ok = Verification([], (C,), (C,))
    assert ok.text() == [f"in sync: database at head {C}, schema matches the models"]
    drift = Verification([Difference("add_column", "a", "column a.b: here")], (C,), (C,))
    assert drift.text() == ["1 difference(s):", "  - column a.b: here"]
    assert drift.as_dict()["in_sync"] is False


def test_revision_from_script(script: ScriptDirectory) -> None:
    revision = Revision.from_script(script.get_revision(B))
    assert revision.down_revision == (A,)
    assert revision.message == "add runs and run events"
    assert str(revision) == f"{B}  add runs and run events"
    first = Revision.from_script(script.get_revision(A))
    assert first.down_revision == ()
