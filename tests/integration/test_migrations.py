"""upgrade, downgrade, migrate, status and history end to end, on every engine."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import inspect, text

from dbtasks import database, migrations
from dbtasks.dialects import dialect_for
from dbtasks.engine import connect
from dbtasks.errors import ConfigError, RefusedError, RevisionError
from dbtasks.settings import Settings
from tests.conftest import Cli, _cli_environ, assert_failure

A, B, C = "a1c3e5f70001", "b2d4f6a80002", "c3e5a7b90003"


def _yes(_question: str) -> bool:
    return True


def _current(settings: Settings) -> tuple[str, ...]:
    return migrations.status(settings).current


def _columns(settings: Settings, table: str) -> set[str]:
    with connect(settings.url) as conn:
        return {c["name"] for c in inspect(conn).get_columns(table)}


def _tables(settings: Settings) -> set[str]:
    with connect(settings.url) as conn:
        return set(inspect(conn).get_table_names())


def _fill(settings: Settings) -> None:
    """Rows in every table, so that downgrades run against data, as they would in real life."""
    with connect(settings.url) as conn:
        conn.execute(
            text("INSERT INTO agents (id, slug, name, owner_email) VALUES (1, 'a', 'A', 'a@x.org')")
        )
        conn.execute(
            text(
                "INSERT INTO agent_versions (id, agent_id, version, image, config) "
                "VALUES (1, 1, 1, 'img:1', '{}')"
            )
        )
        conn.execute(
            text("INSERT INTO runs (id, public_id, agent_version_id) VALUES (1, 'r-1', 1)")
        )
        conn.execute(text("INSERT INTO run_events (id, run_id, seq, kind) VALUES (1, 1, 1, 'x')"))
        conn.commit()


# --------------------------------------------------------------------------- upgrade


def test_upgrade_step_by_step_then_to_head(settings: Settings, cli: Cli) -> None:
    dialect_db = cli("upgrade", "--revision", A, url=settings.url)
    # upgrade does not create the database: that is init's job.
    assert_failure(dialect_db, 1, "does not exist", "db.init creates it")
    database.init(settings)
    migrations.downgrade(settings, revision="base", confirm=_yes)

    first = cli("upgrade", "-r", A, url=settings.url)
    assert first.code == 0, first.stderr
    assert f"applied 1 revision(s): <base> -> {A}" in first.stdout
    assert _current(settings) == (A,)
    assert "runs" not in _tables(settings)

    rest = cli("upgrade", "--format", "json", url=settings.url)
    payload = json.loads(rest.stdout)
    assert payload["from"] == [A]
    assert payload["to"] == [C]
    assert [r["revision"] for r in payload["revisions"]] == [C, B]
    assert _current(settings) == (C,)

    again = cli("upgrade", url=settings.url)
    assert again.stdout.strip() == f"{C}: already up to date, nothing to upgrade"


def test_upgrade_sql_prints_and_changes_nothing(initialised: Settings, cli: Cli) -> None:
    migrations.downgrade(initialised, revision=A, confirm=_yes)
    done = cli("upgrade", "--sql", url=initialised.url)
    assert done.code == 0, done.stderr
    assert f"-- Running upgrade {A} -> {B}" in done.stdout
    assert f"-- Running upgrade {B} -> {C}" in done.stdout
    assert "CREATE TABLE runs" in done.stdout
    assert "ADD COLUMN priority" in done.stdout
    assert _current(initialised) == (A,)
    assert "runs" not in _tables(initialised)

    to_b = cli("upgrade", "--sql", "--revision", B, "--format", "json", url=initialised.url)
    payload = json.loads(to_b.stdout)
    assert "CREATE TABLE runs" in payload["sql"]
    assert "priority" not in payload["sql"]
    assert [r["revision"] for r in payload["revisions"]] == [B]


def test_upgrade_below_the_current_revision_is_refused(initialised: Settings, cli: Cli) -> None:
    done = cli("upgrade", "--revision", A, url=initialised.url)
    assert_failure(done, 1, f"cannot upgrade to '{A}'", f"the database is past it, at {C}")
    with pytest.raises(RevisionError, match=r"db\.downgrade goes back"):
        migrations.upgrade(initialised, A, sql=True)
    assert _current(initialised) == (C,)


def test_upgrade_by_revision_prefix(initialised: Settings) -> None:
    migrations.downgrade(initialised, revision="base", confirm=_yes)
    result = migrations.upgrade(initialised, "b2d4")
    assert result.after == (B,)


# --------------------------------------------------------------------------- downgrade


def test_downgrade_one_step_by_default_then_n_steps_then_base(
    initialised: Settings, cli: Cli
) -> None:
    _fill(initialised)
    one = cli("downgrade", "--yes", url=initialised.url)
    assert one.code == 0, one.stderr
    assert f"reverted 1 revision(s): {C} -> {B}" in one.stdout
    assert "priority" not in _columns(initialised, "runs")

    migrations.upgrade(initialised)
    two = cli("downgrade", "-s", "2", "-y", url=initialised.url)
    assert two.code == 0, two.stderr
    assert f"reverted 2 revision(s): {C} -> {A}" in two.stdout
    assert _tables(initialised) & {"runs", "run_events"} == set()

    base = cli("downgrade", "--revision", "base", "--yes", url=initialised.url)
    assert base.code == 0, base.stderr
    assert _current(initialised) == ()
    assert "agents" not in _tables(initialised)

    below = cli("downgrade", "--yes", url=initialised.url)
    assert_failure(below, 1, "cannot downgrade 1 step(s): the database is 0 revision(s) above base")


def test_downgrade_to_a_revision_and_sql(initialised: Settings, cli: Cli) -> None:
    sql = cli("downgrade", "--sql", url=initialised.url)
    assert sql.code == 0, sql.stderr
    assert f"-- Running downgrade {C} -> {B}" in sql.stdout
    assert "DROP COLUMN priority" in sql.stdout
    assert f"{B} -> {A}" not in sql.stdout
    assert _current(initialised) == (C,)
    assert "priority" in _columns(initialised, "runs")

    two = cli("downgrade", "--sql", "-s", "2", "--format", "json", url=initialised.url)
    payload = json.loads(two.stdout)
    assert "DROP TABLE run_events" in payload["sql"]
    assert payload["to"] == [A]
    assert _current(initialised) == (C,)

    to_a = cli("downgrade", "--revision", A, "--yes", url=initialised.url)
    assert to_a.code == 0, to_a.stderr
    assert _current(initialised) == (A,)


def test_downgrade_bad_arguments(initialised: Settings, cli: Cli) -> None:
    both = cli("downgrade", "-s", "1", "-r", A, "--yes", url=initialised.url)
    assert_failure(both, 2, "give --steps or --revision, not both")
    word = cli("downgrade", "-s", "two", "--yes", url=initialised.url)
    assert_failure(word, 2, "--steps must be a whole number, not 'two'")
    zero = cli("downgrade", "-s", "0", "--yes", url=initialised.url)
    assert_failure(zero, 2, "--steps must be at least 1")
    too_many = cli("downgrade", "-s", "4", "--yes", url=initialised.url)
    assert_failure(too_many, 1, "cannot downgrade 4 step(s): the database is 3 revision(s)")
    unknown = cli("downgrade", "-r", "feedfacecafe", "--yes", url=initialised.url)
    assert_failure(unknown, 1, "unknown revision 'feedfacecafe'")
    assert _current(initialised) == (C,)


def test_downgrade_above_the_current_revision_is_refused(initialised: Settings) -> None:
    migrations.downgrade(initialised, revision=A, confirm=_yes)
    with pytest.raises(RevisionError, match=f"cannot downgrade to '{C}': it is not below"):
        migrations.downgrade(initialised, revision=C, confirm=_yes)


def test_downgrade_refused_by_the_user_changes_nothing(initialised: Settings) -> None:
    with pytest.raises(RefusedError, match="downgrade cancelled"):
        migrations.downgrade(initialised, confirm=lambda _q: False)
    assert _current(initialised) == (C,)


# --------------------------------------------------------------------------- migrate


def test_migrate_down_and_up_with_the_data_loss_guard(initialised: Settings, cli: Cli) -> None:
    refused = cli("migrate", "--target-version", A, "--yes", url=initialised.url)
    line = assert_failure(refused, 4, "5 statement(s) would lose data", "add --force to accept")
    assert "ALTER TABLE runs DROP COLUMN priority" in line
    # The message names the first three; the lines under it list them all.
    assert "  - DROP TABLE run_events\n" in refused.stderr
    assert _current(initialised) == (C,)

    as_json = cli(
        "migrate", "--target-version", A, "--yes", "--format", "json", url=initialised.url
    )
    error = json.loads(as_json.stdout)["error"]
    assert error["exit_code"] == 4
    assert "DROP TABLE run_events" in error["statements"]

    forced = cli("migrate", "--target-version", A, "--yes", "--force", url=initialised.url)
    assert forced.code == 0, forced.stderr
    assert f"reverted 2 revision(s): {C} -> {A}" in forced.stdout
    assert _current(initialised) == (A,)

    up = cli("migrate", "--target-version", "head", url=initialised.url)  # no question going up
    assert up.code == 0, up.stderr
    assert f"applied 2 revision(s): {A} -> {C}" in up.stdout
    assert _current(initialised) == (C,)


def test_migrate_dry_run_changes_nothing(initialised: Settings, cli: Cli) -> None:
    migrations.downgrade(initialised, revision=A, confirm=_yes)
    up = cli("migrate", "--target-version", C, "--dry-run", url=initialised.url)
    assert up.code == 0, up.stderr
    assert "CREATE TABLE runs" in up.stdout
    assert _current(initialised) == (A,)

    migrations.upgrade(initialised)
    down = cli("migrate", "--target-version", "base", "--dry-run", "--format", "json",
               url=initialised.url)  # fmt: skip
    payload = json.loads(down.stdout)
    assert payload["action"] == "downgrade"
    assert payload["to"] == []
    assert "DROP TABLE agents" in payload["sql"]
    assert _current(initialised) == (C,)
    assert "agents" in _tables(initialised)


def test_migrate_rollback(initialised: Settings, cli: Cli) -> None:
    done = cli("migrate", "--rollback", "--yes", "--force", url=initialised.url)
    assert done.code == 0, done.stderr
    assert f"reverted 1 revision(s): {C} -> {B}" in done.stdout
    assert _current(initialised) == (B,)
    # Rolling back the next one drops tables: refused without --force.
    with pytest.raises(RefusedError, match="would lose data"):
        migrations.migrate(initialised, rollback=True, confirm=_yes)
    assert _current(initialised) == (B,)


def test_migrate_arguments(initialised: Settings, cli: Cli) -> None:
    neither = cli("migrate", url=initialised.url)
    assert_failure(neither, 2, "give either --target-version or --rollback")
    both = cli("migrate", "--rollback", "--target-version", A, url=initialised.url)
    assert_failure(both, 2, "give either --target-version or --rollback")
    unknown = cli("migrate", "--target-version", "nope", url=initialised.url)
    assert_failure(unknown, 1, "unknown revision 'nope'")
    same = migrations.migrate(initialised, target=C, confirm=_yes)
    assert same.revisions == []
    assert same.text() == [f"{C}: already up to date, nothing to upgrade"]


def test_migrate_from_an_empty_database(settings: Settings) -> None:
    with pytest.raises(ConfigError, match="give either"):
        migrations.migrate(settings, confirm=_yes)
    database.init(settings)
    migrations.downgrade(settings, revision="base", confirm=_yes)
    result = migrations.migrate(settings, target=B, confirm=_yes)
    assert result.before == ()
    assert result.after == (B,)


# --------------------------------------------------------------------------- status, history


def test_status_and_its_check(settings: Settings, cli: Cli) -> None:
    missing = cli("status", "--check", url=settings.url)
    assert_failure(missing, 3, "3 migration(s) pending")
    assert "database: does not exist (db.init creates it)" in missing.stderr

    database.init(settings)
    migrations.downgrade(settings, steps=1, confirm=_yes)
    text_out = cli("status", url=settings.url)
    assert text_out.code == 0
    assert text_out.stdout.splitlines() == [
        f"current: {B}",
        f"head:    {C}",
        "environment: development",
        "pending: 1 revision(s)",
        f"  {C}  agent descriptions, update times and run priority",
    ]
    gate = cli("status", "--check", "--format", "json", url=settings.url)
    assert gate.code == 3
    payload = json.loads(gate.stdout)
    assert payload["ok"] is False
    assert payload["error"]["up_to_date"] is False
    assert [p["revision"] for p in payload["error"]["pending"]] == [C]

    migrations.upgrade(settings)
    ok = cli("status", "--check", url=settings.url)
    assert ok.code == 0, ok.stderr
    assert ok.stdout.splitlines()[-1] == "up to date"


def test_history_marks_current_and_head(initialised: Settings, cli: Cli) -> None:
    migrations.downgrade(initialised, steps=1, confirm=_yes)
    done = cli("history", url=initialised.url)
    assert done.code == 0, done.stderr
    assert done.stdout.splitlines() == [
        f"{B} -> {C}  (head)  agent descriptions, update times and run priority",
        f"{A} -> {B}  (current)  add runs and run events",
        f"<base> -> {A}  create agents and agent versions",
    ]
    payload = json.loads(cli("history", "--format", "json", url=initialised.url).stdout)
    marks = {r["revision"]: (r["current"], r["head"]) for r in payload["revisions"]}
    assert marks == {C: (False, True), B: (True, False), A: (False, False)}


def test_history_of_a_missing_database(settings: Settings) -> None:
    result = migrations.history(settings)
    assert result.current == ()
    assert [r.revision for r in result.revisions] == [C, B, A]


# --------------------------------------------------------------------------- the revisions


def test_every_revision_goes_down_and_up_again_with_data(initialised: Settings) -> None:
    """Each revision's downgrade works on every engine, on tables holding rows."""
    _fill(initialised)
    for target in (B, A, "base"):
        migrations.downgrade(initialised, revision=target, confirm=_yes)
        assert _current(initialised) == (() if target == "base" else (target,))
    assert _tables(initialised) <= {"alembic_version", "dbtasks_metadata"}
    migrations.upgrade(initialised)
    assert migrations.verify(initialised).differences == []


def test_plain_alembic_uses_the_same_env(settings: Settings, project: Path) -> None:
    """env.py also works without dbtasks: `alembic upgrade head` with DATABASE_URL."""
    dialect_for(settings.url).create_database(settings.url, 10)
    proc = subprocess.run(
        [sys.executable, "-m", "alembic", "upgrade", "head"],
        cwd=project,
        env=_cli_environ(settings.url, None),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert _current(settings) == (C,)
    assert migrations.verify(settings).differences == []
