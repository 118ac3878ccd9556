"""init, recreate and delete-db end to end, with their guards, on every engine."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.engine import URL

from dbtasks import database
from dbtasks.dialects import dialect_for
from dbtasks.engine import connect
from dbtasks.environment import read_environment
from dbtasks.settings import Settings
from tests.conftest import Cli, Server, assert_failure, other_session

HEAD = "c3e5a7b90003"
SERVICE_TABLES = {"agents", "agent_versions", "runs", "run_events"}


def _exists(url: URL) -> bool:
    return dialect_for(url).database_exists(url, 5)


def _tables(settings: Settings) -> set[str]:
    with connect(settings.url) as conn:
        return set(inspect(conn).get_table_names())


def _add_agent(settings: Settings) -> None:
    with connect(settings.url) as conn:
        conn.execute(
            text("INSERT INTO agents (slug, name, owner_email) VALUES ('a', 'A', 'a@example.com')")
        )
        conn.commit()


def _agents(settings: Settings) -> int:
    with connect(settings.url) as conn:
        return int(conn.execute(text("SELECT COUNT(*) FROM agents")).scalar_one())


# --------------------------------------------------------------------------- init


def test_init_creates_migrates_and_repeats(settings: Settings, cli: Cli) -> None:
    assert not _exists(settings.url)
    first = cli("init", url=settings.url)
    assert first.code == 0, first.stderr
    assert f"created database {settings.database!r} (development)" in first.stdout
    assert f"applied 3 revision(s): <base> -> {HEAD}" in first.stdout
    assert _exists(settings.url)
    assert SERVICE_TABLES | {"alembic_version", "dbtasks_metadata"} <= _tables(settings)

    second = cli("init", url=settings.url)
    assert second.code == 0, second.stderr
    assert f"database {settings.database!r} exists" in second.stdout
    assert f"{HEAD}: already up to date, nothing to upgrade" in second.stdout

    third = cli("init", "--format", "json", url=settings.url)
    payload = json.loads(third.stdout)
    assert payload["created"] is False
    assert payload["revisions"] == []
    assert payload["to"] == [HEAD]


def test_init_records_the_environment(settings: Settings, cli: Cli) -> None:
    done = cli("init", "--environment", "staging", url=settings.url)
    assert done.code == 0, done.stderr
    with connect(settings.url) as conn:
        assert read_environment(conn) == "staging"
    # A later init configured differently keeps the recorded name, and says so.
    again = cli("init", url=settings.url)
    assert again.code == 0
    assert "recorded as 'staging'" in again.stderr
    with connect(settings.url) as conn:
        assert read_environment(conn) == "staging"


def test_init_marks_production_from_the_environment_variable(settings: Settings, cli: Cli) -> None:
    database.init(settings)
    done = cli("init", url=settings.url, env={"DBTASKS_ENV": "production"})
    assert done.code == 0, done.stderr
    with connect(settings.url) as conn:
        assert read_environment(conn) == "production"


def test_init_on_a_database_made_elsewhere(settings: Settings) -> None:
    """An existing, empty database (made by a DBA) is migrated, not re-created."""
    dialect_for(settings.url).create_database(settings.url, 5)
    result = database.init(settings)
    assert result.created is False
    assert [r.revision for r in result.migration.revisions] == [
        HEAD,
        "b2d4f6a80002",
        "a1c3e5f70001",
    ]


# --------------------------------------------------------------------------- recreate, delete


def test_recreate_starts_over(initialised: Settings, cli: Cli) -> None:
    _add_agent(initialised)
    done = cli("recreate", "--yes", url=initialised.url)
    assert done.code == 0, done.stderr
    assert f"dropped database {initialised.database!r}" in done.stdout
    assert f"created database {initialised.database!r}" in done.stdout
    assert _agents(initialised) == 0
    assert _tables(initialised) >= SERVICE_TABLES


def test_recreate_a_missing_database_just_creates_it(settings: Settings, cli: Cli) -> None:
    done = cli("recreate", "--format", "json", url=settings.url)  # nothing to drop: no question
    assert done.code == 0, done.stderr
    payload = json.loads(done.stdout)
    assert payload["dropped"]["dropped"] is False
    assert payload["created"] is True


def test_delete_db_drops_and_repeats(initialised: Settings, cli: Cli) -> None:
    done = cli("delete-db", "--yes", url=initialised.url)
    assert done.code == 0, done.stderr
    assert done.stdout.strip() == f"dropped database {initialised.database!r}"
    assert not _exists(initialised.url)
    again = cli("delete-db", "--yes", url=initialised.url)
    assert again.code == 0
    assert "does not exist: nothing to drop" in again.stdout


@pytest.mark.parametrize(
    "args",
    [("recreate",), ("delete-db",), ("downgrade",), ("migrate", "--rollback", "--force")],
    ids=["recreate", "delete-db", "downgrade", "migrate-rollback"],
)
def test_destructive_tasks_need_yes_without_a_terminal(
    initialised: Settings, cli: Cli, args: tuple[str, ...]
) -> None:
    done = cli(*args, url=initialised.url, input_text="y\n")  # a pipe is not a terminal
    line = assert_failure(done, 4, "refused without --yes (no terminal to ask on)")
    assert initialised.display_url in line
    assert _exists(initialised.url)
    with connect(initialised.url) as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == HEAD


def test_a_terminal_is_asked_and_no_cancels(initialised: Settings, cli_tty: Cli) -> None:
    done = cli_tty("delete-db", url=initialised.url, input_text="n\n")
    assert done.code == 4, done.stderr
    # The typed answer is echoed on the terminal, not on stderr: the prompt ends its line.
    question = f"Drop database {initialised.database!r} on {initialised.display_url}"
    assert done.stderr.startswith(question)
    assert "all its data? [y/N] dbtasks delete-db: delete-db cancelled: not confirmed\n" in (
        done.stderr
    )
    assert _exists(initialised.url)

    empty = cli_tty("downgrade", url=initialised.url, input_text="\n")  # the default is no
    assert empty.code == 4, empty.stderr
    assert empty.stderr.startswith("Revert 1 revision(s) (c3e5a7b90003)")
    assert "dbtasks downgrade: downgrade cancelled: not confirmed" in empty.stderr

    yes = cli_tty("delete-db", url=initialised.url, input_text="y\n")
    assert yes.code == 0, yes.stderr
    assert not _exists(initialised.url)


def test_production_is_refused_unless_forced(settings: Settings, cli: Cli) -> None:
    assert cli("init", "--environment", "production", url=settings.url).code == 0
    for args in (
        ("delete-db", "--yes"),
        ("recreate", "--yes"),
        ("downgrade", "--yes"),
        ("migrate", "--target-version", "b2d4f6a80002", "--yes"),
    ):
        done = cli(*args, url=settings.url)
        assert_failure(done, 4, "is recorded as 'production'", "--force")
    assert _exists(settings.url)
    # --force overrides (and --yes still answers the question).
    forced = cli("downgrade", "--yes", "--force", url=settings.url)
    assert forced.code == 0, forced.stderr
    gone = cli("delete-db", "--yes", "--force", url=settings.url)
    assert gone.code == 0, gone.stderr
    assert not _exists(settings.url)


def test_production_configured_in_the_shell_is_refused(initialised: Settings, cli: Cli) -> None:
    done = cli("delete-db", "--yes", url=initialised.url, env={"DBTASKS_ENV": "production"})
    assert_failure(done, 4, "is configured as 'production'")
    assert _exists(initialised.url)


# --------------------------------------------------------------------------- other sessions


@pytest.mark.parametrize("engine", ["postgresql", "mysql"])
def test_other_sessions_are_reported_then_ended(initialised: Settings, cli: Cli) -> None:
    with other_session(initialised.url):
        refused = cli("delete-db", "--yes", url=initialised.url)
        line = assert_failure(refused, 4, "1 other session(s) connected", "--terminate")
        assert "pid " in line
        assert _exists(initialised.url)

        as_json = cli("delete-db", "--yes", "--format", "json", url=initialised.url)
        assert as_json.code == 4
        error: dict[str, Any] = json.loads(as_json.stdout)["error"]
        assert error["type"] == "RefusedError"
        assert len(error["sessions"]) == 1
        assert error["sessions"][0]["pid"] > 0

        ended = cli("delete-db", "--yes", "--terminate", url=initialised.url)
        assert ended.code == 0, ended.stderr
        assert "ended session pid" in ended.stdout
        assert "ending 1 other session(s)" in ended.stderr
        assert not _exists(initialised.url)


@pytest.mark.parametrize("engine", ["postgresql", "mysql"])
def test_recreate_with_a_session_open(initialised: Settings) -> None:
    with other_session(initialised.url):
        result = database.recreate(initialised, confirm=lambda _q: True, terminate=True)
    assert result.dropped.dropped
    assert len(result.dropped.terminated) == 1
    assert result.init.created


# --------------------------------------------------------------------------- hostile names

HOSTILE = {
    "postgresql": ['a"b; drop', "x'y%z:w"],
    "mysql": ['a"b; drop', "a`b%c:d", "p'q"],
}


@pytest.mark.parametrize(
    ("engine", "name"),
    [(engine, name) for engine, names in HOSTILE.items() for name in names],
)
def test_hostile_database_names_are_themselves(server: Server, cli: Cli, name: str) -> None:
    assert server.user_url is not None
    url = server.user_url.set(database=name)
    others = server.database_names()
    try:
        made = cli("init", url=url)
        assert made.code == 0, made.stderr
        created = server.database_names() - others
        assert name in created
        # Nothing made under a mangled name (other suites may create databases meanwhile).
        mangled = {n for n in created - {name} if "%%" in n or "``" in n or n[:3] == name[:3]}
        assert mangled == set()
        assert cli("verify", url=url).code == 0
        dropped = cli("delete-db", "--yes", url=url)
        assert dropped.code == 0, dropped.stderr
        assert name not in server.database_names()
    finally:
        server.drop_database(name)


def test_an_odd_sqlite_file_name(tmp_path: Path, cli: Cli) -> None:
    path = tmp_path / "da ta" / 'o\'dd "name" %x:y?#;.db'
    url = URL.create("sqlite", database=str(path))
    made = cli("init", url=url)
    assert made.code == 0, made.stderr
    assert path.is_file()
    assert [p.name for p in path.parent.iterdir()] == [path.name]
    assert cli("delete-db", "--yes", url=url).code == 0
    assert not path.exists()
