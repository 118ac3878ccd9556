"""verify and create-migration: the models against the live schema, on every engine."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dbtasks import migrations
from dbtasks.errors import CommandError, ConfigError, DriftError, RevisionError
from dbtasks.settings import Settings
from tests.conftest import BRANCH_REVISION, Cli, add_branch, assert_failure, change_models

A, B, C = "a1c3e5f70001", "b2d4f6a80002", "c3e5a7b90003"

NEW_COLUMN = """
target_metadata.tables["agents"].append_column(sa.Column("timeout_s", sa.Integer(), nullable=True))
"""
NEW_TABLE = """
sa.Table(
    "agent_tags",
    target_metadata,
    sa.Column("id", sa.Integer(), primary_key=True),
    sa.Column("agent_id", sa.ForeignKey("agents.id"), nullable=False),
    sa.Column("tag", sa.String(40), nullable=False),
)
"""


def _yes(_question: str) -> bool:
    return True


def _versions(project: Path) -> set[str]:
    return {p.name for p in (project / "alembic" / "versions").glob("*.py")}


# --------------------------------------------------------------------------- verify


def test_verify_in_sync(initialised: Settings, cli: Cli) -> None:
    done = cli("verify", url=initialised.url)
    assert done.code == 0, done.stderr
    assert done.stdout.strip() == (f"in sync: database at head {C}, schema matches the models")
    payload = json.loads(cli("verify", "--format", "json", url=initialised.url).stdout)
    assert payload["in_sync"] is True
    assert payload["differences"] == []
    assert payload["heads"] == payload["current"] == [C]


def test_verify_lists_drift_in_text_and_json(
    initialised: Settings, project: Path, cli: Cli
) -> None:
    change_models(
        project,
        NEW_COLUMN
        + NEW_TABLE
        + 'target_metadata.tables["agents"].c.name.type = sa.String(100)\n'
        + 'target_metadata.tables["runs"].indexes.clear()\n',
    )
    done = cli("verify", url=initialised.url)
    assert_failure(done, 3, "schema drift:", "difference(s) between the database and the models")
    listed = [line for line in done.stderr.splitlines() if line.startswith("  - ")]
    assert "  - column agents.timeout_s: in the models, not in the database" in listed
    assert "  - table agent_tags: in the models, not in the database" in listed
    assert "  - column agents.name type: database VARCHAR(200), models VARCHAR(100)" in listed
    assert "  - index ix_runs_status_queued_at on runs: in the database, not in the models" in (
        listed
    )

    as_json = cli("verify", "--format", "json", url=initialised.url)
    assert as_json.code == 3
    payload = json.loads(as_json.stdout)
    assert payload["ok"] is False
    error = payload["error"]
    assert error["type"] == "DriftError"
    assert error["exit_code"] == 3
    assert error["in_sync"] is False
    kinds = {(d["kind"], d["table"]) for d in error["differences"]}
    assert {
        ("add_column", "agents"),
        ("add_table", "agent_tags"),
        ("modify_type", "agents"),
        ("remove_index", "runs"),
    } <= kinds
    # Text and JSON list the same differences.
    assert [f"  - {d['detail']}" for d in error["differences"]] == listed


def test_verify_not_at_head(initialised: Settings, cli: Cli) -> None:
    migrations.downgrade(initialised, confirm=_yes)
    done = cli("verify", url=initialised.url)
    assert_failure(done, 3, "schema drift")
    assert f"  - database at {B}, head is {C} (1 pending)" in done.stderr
    with pytest.raises(DriftError) as caught:
        migrations.verify(initialised)
    kinds = [d["kind"] for d in caught.value.details["differences"]]  # type: ignore[attr-defined]
    assert kinds[0] == "revision"


def test_verify_several_heads(initialised: Settings, project: Path, cli: Cli) -> None:
    add_branch(project)
    done = cli("verify", url=initialised.url)
    assert_failure(done, 3, "schema drift")
    assert f"  - several heads: {BRANCH_REVISION}, {C}" in done.stderr or (
        f"  - several heads: {C}, {BRANCH_REVISION}" in done.stderr
    )


def test_verify_a_missing_database(settings: Settings, cli: Cli) -> None:
    done = cli("verify", url=settings.url)
    assert_failure(done, 1, "does not exist", "db.init creates it")


# --------------------------------------------------------------------------- several heads


def test_several_heads_are_refused_with_one_line(
    initialised: Settings, project: Path, cli: Cli
) -> None:
    add_branch(project)
    up = cli("upgrade", url=initialised.url)
    assert_failure(up, 1, "several heads", "merge them", "or name a revision")
    migrate = cli("migrate", "--target-version", "head", url=initialised.url)
    assert_failure(migrate, 1, "several heads")
    status = cli("status", "--check", url=initialised.url)
    assert_failure(status, 3, "1 migration(s) pending")
    # Naming the branch's revision works, and then the database is at two heads.
    branch = cli("upgrade", "--revision", BRANCH_REVISION, url=initialised.url)
    assert branch.code == 0, branch.stderr
    assert set(migrations.status(initialised).current) == {C, BRANCH_REVISION}
    down = cli("downgrade", "--yes", url=initialised.url)
    assert_failure(down, 1, "database is at several heads", "name a --revision")
    named = cli("downgrade", "--revision", A, "--yes", "--format", "json", url=initialised.url)
    assert named.code == 0, named.stderr
    assert json.loads(named.stdout)["to"] == [A]


# --------------------------------------------------------------------------- create-migration


def test_create_migration_from_a_model_change(
    initialised: Settings, project: Path, cli: Cli
) -> None:
    change_models(project, NEW_COLUMN + NEW_TABLE)
    before = _versions(project)
    done = cli("create-migration", "-m", "add agent timeouts and tags", url=initialised.url)
    assert done.code == 0, done.stderr
    (created,) = _versions(project) - before
    assert created.endswith("_add_agent_timeouts_and_tags.py")
    path = project / "alembic" / "versions" / created
    assert done.stdout.strip() == f"created {path} (2 operation(s))"
    source = path.read_text(encoding="utf-8")
    assert f"down_revision: str | tuple[str, ...] | None = '{C}'" in source
    assert "timeout_s" in source
    assert "agent_tags" in source
    # The database did not change; upgrading applies the new revision and all is in sync.
    assert cli("verify", url=initialised.url).code == 3
    assert cli("upgrade", url=initialised.url).code == 0
    verified = cli("verify", url=initialised.url)
    assert verified.code == 0, verified.stderr
    # And it goes down again on every engine.
    assert cli("downgrade", "--yes", url=initialised.url).code == 0
    assert migrations.status(initialised).current == (C,)


def test_create_migration_refuses_an_empty_revision(
    initialised: Settings, project: Path, cli: Cli
) -> None:
    before = _versions(project)
    done = cli("create-migration", "-m", "nothing", url=initialised.url)
    assert_failure(done, 1, "no changes between the models and the database", "--empty")
    assert _versions(project) == before

    empty = cli(
        "create-migration", "-m", "backfill owners", "--empty", "--format", "json",
        url=initialised.url,
    )  # fmt: skip
    assert empty.code == 0, empty.stderr
    payload = json.loads(empty.stdout)
    assert payload["operations"] == 0
    assert Path(payload["path"]).name in _versions(project) - before
    assert Path(payload["path"]).parent == project / "alembic" / "versions"


def test_create_migration_needs_a_message_and_a_database_at_head(
    initialised: Settings, project: Path, cli: Cli
) -> None:
    no_message = cli("create-migration", url=initialised.url)
    assert_failure(no_message, 2, "a migration needs a message")
    migrations.downgrade(initialised, confirm=_yes)
    change_models(project, NEW_COLUMN)
    behind = cli("create-migration", "-m", "x", url=initialised.url)
    assert_failure(behind, 1, f"is not at head {C}", "run db.upgrade")


def test_create_migration_library_errors(initialised: Settings) -> None:
    with pytest.raises(ConfigError):
        migrations.create_migration(initialised, "  ")
    with pytest.raises(CommandError, match="nothing written"):
        migrations.create_migration(initialised, "no change")
    migrations.downgrade(initialised, confirm=_yes)
    with pytest.raises(RevisionError, match="not at head"):
        migrations.create_migration(initialised, "behind")
