"""Output: one JSON object per task on stdout, logs on stderr, SQL with --verbose, and logging
that a host application captures."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from dbtasks import database
from dbtasks.cli import program
from dbtasks.settings import Settings
from tests.conftest import Cli

C = "c3e5a7b90003"

#: Every issue-2 task, in an order that works on one database, with the fields it reports.
TASKS: list[tuple[tuple[str, ...], set[str]]] = [
    (("init",), {"created", "environment", "revisions"}),
    (("status",), {"current", "heads", "pending", "up_to_date"}),
    (("history",), {"revisions"}),
    (("verify",), {"in_sync", "differences"}),
    (("upgrade",), {"from", "to", "revisions"}),
    (("downgrade", "--sql"), {"sql"}),
    (("downgrade", "--yes"), {"from", "to", "revisions"}),
    (("upgrade", "--sql"), {"sql"}),
    (("migrate", "--target-version", "head", "--dry-run"), {"sql", "action"}),
    (("migrate", "--target-version", "head"), {"action", "revisions"}),
    (("migrate", "--rollback", "--yes", "--force"), {"action", "revisions"}),
    (("create-migration", "-m", "by hand", "--empty"), {"revision", "path", "operations"}),
    (("recreate", "--yes"), {"dropped", "created"}),
    (("delete-db", "--yes"), {"dropped", "terminated_sessions"}),
]


def test_every_task_prints_one_json_object(settings: Settings, cli: Cli) -> None:
    for args, fields in TASKS:
        done = cli(*args, "--format", "json", url=settings.url)
        assert done.code == 0, (args, done.stderr)
        payload: dict[str, Any] = json.loads(done.stdout)  # the whole of stdout: one object
        assert payload["task"] == args[0]
        assert payload["ok"] is True
        assert {"url", "database", "runner"} <= payload.keys()
        assert payload["database"] == settings.database
        assert fields <= payload.keys(), (args, payload.keys())
        assert "{" not in done.stderr, done.stderr  # logs stay on stderr, and are not JSON


def test_failures_print_one_json_object_too(initialised: Settings, cli: Cli) -> None:
    for args, code in (
        (("downgrade",), 4),
        (("upgrade", "-r", "nope"), 1),
        (("status", "--check", "--url", "sqlite:///var/missing.db"), 3),
        (("downgrade", "-s", "x"), 2),
    ):
        done = cli(*args, "--format", "json", url=initialised.url)
        assert done.code == code, (args, done.output)
        payload = json.loads(done.stdout)
        assert payload["ok"] is False
        assert payload["error"]["exit_code"] == code
        assert done.stderr.splitlines()[-1] == f"dbtasks {args[0]}: {payload['error']['message']}"


def test_text_output_goes_to_stdout_and_logs_to_stderr(settings: Settings, cli: Cli) -> None:
    done = cli("init", url=settings.url)
    assert done.code == 0
    assert f"creating database {settings.database!r}" in done.stderr
    assert "creating database" not in done.stdout
    quiet = cli("recreate", "--yes", "-q", url=settings.url)
    assert quiet.code == 0
    assert quiet.stderr == ""
    assert "created database" in quiet.stdout


def test_verbose_shows_the_sql(initialised: Settings, cli: Cli) -> None:
    plain = cli("downgrade", "--yes", url=initialised.url)
    assert "DROP COLUMN" not in plain.stderr
    verbose = cli("upgrade", "-v", url=initialised.url)
    assert verbose.code == 0, verbose.stderr
    assert "ADD COLUMN priority" in verbose.stderr
    assert "alembic_version" in verbose.stderr
    assert "ADD COLUMN" not in verbose.stdout
    as_json = cli("status", "--verbose", "--format", "json", url=initialised.url)
    json.loads(as_json.stdout)
    assert "SELECT" in as_json.stderr


# --------------------------------------------------------------------------- the library


def test_library_logs_reach_the_host_application(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """No handler of its own: records propagate to whatever the application configured."""
    with caplog.at_level(logging.INFO):
        database.init(settings)
    creating = [r for r in caplog.records if "creating database" in r.getMessage()]
    assert creating
    assert creating[0].name.startswith("dbtasks")


def test_a_task_run_in_process_leaves_the_hosts_logging_alone(
    initialised: Settings,
    project: Path,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(project)
    before = {n: (logging.getLogger(n).level, logging.getLogger(n).propagate) for n in
              ("dbtasks", "alembic", "sqlalchemy.engine")}  # fmt: skip
    url = initialised.url.render_as_string(hide_password=False)
    program.run(["dbtasks", "status", "--format", "json", "--url", url], exit=False)
    assert json.loads(capsys.readouterr().out)["current"] == [C]
    after = {n: (logging.getLogger(n).level, logging.getLogger(n).propagate) for n in before}
    assert after == before
    assert not any(
        type(h).__name__ == "TaskHandler" for n in before for h in logging.getLogger(n).handlers
    )
    with caplog.at_level(logging.INFO):
        database.recreate(initialised, confirm=lambda _q: True)
    assert any(
        r.name.startswith("dbtasks") and "creating database" in r.getMessage()
        for r in caplog.records
    )
