"""Migration tasks with ``--runner compose`` change the database exactly as locally.

Each task runs inside the app container against the app's own database (its DATABASE_URL,
PostgreSQL or MariaDB/MySQL); the same task runs with the local runner against a scratch
database on the same server; both are then read from this machine through the published port
and compared: tables and columns, Alembic revision, recorded environment, output.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Cli, CliResult, assert_failure
from tests.docker.conftest import AppDatabase
from tests.docker.project import ComposeProject

HEAD = "c3e5a7b90003"
pytestmark = pytest.mark.docker


def in_compose(cli: Cli, project: ComposeProject, *args: str, **kw: Any) -> CliResult:
    env = {**project.cli_env, **kw.pop("env", {})}
    return cli(*args, "--runner", "compose", env=env, **kw)


def local(cli: Cli, db: AppDatabase, database: str, *args: str) -> CliResult:
    return cli(*args, url=db.url(database))


def ok(result: CliResult) -> CliResult:
    assert result.code == 0, (result.argv, result.stdout, result.stderr)
    assert "Traceback" not in result.output, result.output
    return result


def same_output(there: CliResult, here: CliResult, scratch: str) -> bool:
    """The two runs printed the same, but for the database's name and whether ``init`` had
    to create it (on MySQL the scratch database is made beforehand: the app user may not)."""

    def plain(text: str, name: str) -> str:
        text = text.replace(f"created database '{name}'", "database")
        return text.replace(f"database '{name}' exists", "database")

    return plain(there.stdout, "app") == plain(here.stdout, scratch)


def payload(result: CliResult) -> dict[str, Any]:
    """A task's JSON object without what names the database and the runner."""
    found: dict[str, Any] = json.loads(result.stdout)
    for key in ("url", "database", "runner"):
        found.pop(key, None)
    return found


def test_init_matches_local(app_db: AppDatabase, compose_project: ComposeProject, cli: Cli) -> None:
    assert app_db.snapshot() is None
    there = ok(in_compose(cli, compose_project, "init"))
    scratch = app_db.new_scratch()
    here = ok(local(cli, app_db, scratch, "init"))
    state = app_db.snapshot()
    assert state is not None
    assert state["revision"] == [HEAD]
    assert state["environment"] == "development"
    assert state == app_db.snapshot(scratch)
    assert same_output(there, here, scratch)
    assert f"<base> -> {HEAD}" in there.stdout
    # Safe to repeat, as locally.
    again = ok(in_compose(cli, compose_project, "init"))
    assert "already up to date" in again.stdout


def test_upgrade_downgrade_migrate_match_local(
    app_db: AppDatabase, compose_project: ComposeProject, cli: Cli
) -> None:
    scratch = app_db.new_scratch()
    steps = [
        ("init",),
        ("downgrade", "--steps=2", "--yes"),
        ("upgrade", "--revision=b2d4f6a80002"),
        ("migrate", "--target-version=base", "--yes", "--force"),
        ("migrate", "--target-version=head"),
        # These print SQL and change nothing.
        ("downgrade", "--sql"),
        ("migrate", "--target-version=a1c3e5f70001", "--dry-run"),
    ]
    for step in steps:
        there = in_compose(cli, compose_project, *step)
        here = local(cli, app_db, scratch, *step)
        assert (there.code, here.code) == (0, 0), (step, there.output, here.output)
        assert app_db.snapshot() == app_db.snapshot(scratch), step
        assert same_output(there, here, scratch), (step, there.stdout, here.stdout)
    assert "DROP TABLE" in there.stdout.upper()
    assert app_db.snapshot()["revision"] == [HEAD]  # type: ignore[index]


def test_status_history_verify_maintenance_report_as_locally(
    app_db: AppDatabase, compose_project: ComposeProject, cli: Cli
) -> None:
    scratch = app_db.new_scratch()
    ok(in_compose(cli, compose_project, "init"))
    ok(local(cli, app_db, scratch, "init"))
    for task in ("status", "history", "verify"):
        there = ok(in_compose(cli, compose_project, task, "--format", "json"))
        here = ok(local(cli, app_db, scratch, task, "--format", "json"))
        assert json.loads(there.stdout)["runner"] == "compose"
        assert payload(there) == payload(here), task
    text_there = ok(in_compose(cli, compose_project, "history"))
    assert text_there.stdout == ok(local(cli, app_db, scratch, "history")).stdout
    there = ok(in_compose(cli, compose_project, "maintenance", "--format", "json"))
    here = ok(local(cli, app_db, scratch, "maintenance", "--format", "json"))
    assert payload(there).keys() == payload(here).keys()
    assert payload(there)["ok"] is True
    # A deploy gate: pending migrations exit 3 through the container too.
    ok(in_compose(cli, compose_project, "downgrade", "--yes"))
    gate = in_compose(cli, compose_project, "status", "--check")
    assert gate.code == 3, gate.output
    assert "1 migration(s) pending" in gate.stderr


def test_recreate_and_delete_db_match_local(
    app_db: AppDatabase, compose_project: ComposeProject, cli: Cli
) -> None:
    scratch = app_db.new_scratch()
    for database in ("app", scratch):
        ok(local(cli, app_db, database, "init"))
        app_db.execute(
            "INSERT INTO agents (slug, name, owner_email) VALUES ('a', 'A', 'a@x')", database
        )
    assert app_db.rows("agents") == 1
    ok(in_compose(cli, compose_project, "recreate", "--yes"))
    ok(local(cli, app_db, scratch, "recreate", "--yes"))
    assert app_db.rows("agents") == 0
    assert app_db.snapshot() == app_db.snapshot(scratch)
    ok(in_compose(cli, compose_project, "delete-db", "--yes"))
    ok(local(cli, app_db, scratch, "delete-db", "--yes"))
    assert {"app", scratch}.isdisjoint(app_db.databases())
    # Nothing to drop, as locally: not an error.
    assert "does not exist" in ok(in_compose(cli, compose_project, "delete-db", "--yes")).stdout


ONE_ENGINE = pytest.mark.parametrize("app_server", ["postgresql"], indirect=True)


@ONE_ENGINE  # what is tested here happens on this machine, whatever the engine
def test_confirmation_is_asked_here(
    app_db: AppDatabase, compose_project: ComposeProject, cli: Cli, cli_tty: Cli
) -> None:
    ok(in_compose(cli, compose_project, "init"))
    # No terminal: refused as locally, nothing changed.
    refused = in_compose(cli, compose_project, "downgrade")
    assert_failure(refused, 4, "refused without --yes (no terminal to ask on)", "Revert 1")
    no = in_compose(cli_tty, compose_project, "downgrade", input_text="n\n")
    assert no.code == 4, no.output
    # The task's own question, then (on the prompt's line: the answer echoes on the terminal)
    # the line a "no" ends it with locally.
    assert "Revert 1 revision(s) (c3e5a7b90003)" in no.stderr
    assert no.stderr.endswith("[y/N] dbtasks downgrade: downgrade cancelled: not confirmed\n")
    assert app_db.snapshot()["revision"] == [HEAD]  # type: ignore[index]
    yes = ok(in_compose(cli_tty, compose_project, "downgrade", input_text="y\n"))
    assert "reverted 1 revision(s)" in yes.stdout
    assert app_db.snapshot()["revision"] == ["b2d4f6a80002"]  # type: ignore[index]
    # A task that needs no confirmation asks nothing (migrate going up).
    up = ok(in_compose(cli_tty, compose_project, "migrate", "--target-version=head"))
    assert "[y/N]" not in up.stderr


@pytest.fixture
def new_revisions(compose_project: ComposeProject) -> Any:
    """Revision files written in the app container, removed from it after the test."""
    written: list[str] = []
    yield written
    app = compose_project.container("app")
    for name in written:
        subprocess.run(
            ["docker", "exec", app, "rm", "-f", f"/app/alembic/versions/{name}"], check=True
        )


@ONE_ENGINE
def test_create_migration_leaves_the_file_here(
    app_db: AppDatabase,
    compose_project: ComposeProject,
    cli: Cli,
    project: Path,
    new_revisions: list[str],
) -> None:
    ok(in_compose(cli, compose_project, "init"))
    # Models and database agree: nothing to write, the task's own failure (exit 1).
    unchanged = in_compose(cli, compose_project, "create-migration", "-m", "nothing")
    assert_failure(unchanged, 1, "no changes between the models and the database")
    versions = project / "alembic" / "versions"
    before = set(versions.glob("*.py"))
    made = ok(in_compose(cli, compose_project, "create-migration", "-m", "from the box", "--empty"))
    created = set(versions.glob("*.py")) - before
    assert len(created) == 1, made.output
    path = created.pop()
    new_revisions.append(path.name)
    assert made.stdout == f"created alembic/versions/{path.name} (0 operation(s))\n"
    source = path.read_text(encoding="utf-8")
    assert "from the box" in source
    assert f"Revises: {HEAD}" in source
    # The container has it too: its head moved, as a local create-migration's would.
    status = json.loads(ok(in_compose(cli, compose_project, "status", "--format=json")).stdout)
    assert status["heads"] == [path.name.split("_")[1]]
    # JSON: the path is the one here.
    second = ok(
        in_compose(
            cli, compose_project, "create-migration", "-m", "second", "--empty", "--format=json"
        )
    )
    result = json.loads(second.stdout)
    new_revisions.append(Path(result["path"]).name)
    assert (project / result["path"]).is_file()
    assert result["runner"] == "compose"


def test_url_flag_names_the_database_as_this_machine_sees_it(
    app_db: AppDatabase, compose_project: ComposeProject, cli: Cli, tmp_path: Path
) -> None:
    scratch = app_db.new_scratch()
    password_file = tmp_path / "password"
    password_file.write_text(app_db.password + "\n", encoding="utf-8")
    url = app_db.url(scratch).set(password=None).render_as_string()
    done = ok(
        in_compose(
            cli,
            compose_project,
            "init",
            "--url",
            url,
            "--format=json",
            env={"DATABASE_PASSWORD_FILE": str(password_file)},
        )
    )
    result = json.loads(done.stdout)
    service = "postgres:5432" if app_db.engine == "postgresql" else "mysql:3306"
    assert f"app:***@{service}/{scratch}" in result["url"]
    assert app_db.snapshot(scratch)["revision"] == [HEAD]  # type: ignore[index]
    assert app_db.snapshot() is None  # the app's own database untouched
    # DATABASE_URL here names it as well (the way dbtasks takes a URL with a password).
    here = {"DATABASE_URL": url, "DATABASE_PASSWORD_FILE": str(password_file)}
    status = ok(in_compose(cli, compose_project, "status", "--format=json", env=here))
    assert json.loads(status.stdout)["url"] == result["url"]
