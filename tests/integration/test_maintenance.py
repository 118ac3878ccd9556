"""db.maintenance on every engine: steps run, health figures are real, problems are found."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from agentsvc import service
from agentsvc.models import RunStatus
from dbtasks import database
from dbtasks.engine import make_engine
from dbtasks.errors import CommandError
from dbtasks.maintenance import maintain
from dbtasks.settings import Settings


def _populate(settings: Settings, runs: int = 5) -> None:
    engine = make_engine(settings.url)
    with Session(engine) as session, session.begin():
        agent = service.register_agent(session, "crawler", "Crawler", "ops@example.com")
        version = service.publish_version(session, agent, "registry/crawler:1", {"depth": 2})
        for i in range(runs):
            run = service.start_run(session, version, {"url": f"https://example.com/{i}"})
            service.finish_run(session, run, RunStatus.succeeded)
    engine.dispose()


def test_maintenance_reports_health_and_runs_steps(settings: Settings) -> None:
    database.init(settings)
    _populate(settings)
    result = maintain(settings, vacuum=True)
    assert [s.name for s in result.steps] == ["vacuum", "check"]
    assert result.problems == []
    assert result.after.size_bytes > 0
    tables = {t.name: t for t in result.after.tables}
    assert {"agents", "runs", "run_events"} <= set(tables)
    # Exact on SQLite, estimates elsewhere: after VACUUM/ANALYZE the estimates are current.
    assert tables["run_events"].rows == 10


def test_analyze_alone(settings: Settings) -> None:
    database.init(settings)
    result = maintain(settings, analyze=True, vacuum=False, check=False)
    assert [s.name for s in result.steps] == ["analyze"]
    assert result.steps[0].statements


def test_cli_json_is_one_object(settings: Settings, cli: Any) -> None:
    database.init(settings)
    done = cli("maintenance", "--format", "json", url=settings.url)
    assert done.code == 0, done.stderr
    payload = json.loads(done.stdout)
    assert payload["ok"] is True
    assert [s["name"] for s in payload["steps"]] == ["analyze", "check"]
    assert payload["health"]["size_bytes"] > 0


@pytest.mark.parametrize("engine", ["sqlite"])
def test_sqlite_foreign_key_violation_is_a_problem(settings: Settings, cli: Any) -> None:
    database.init(settings)
    engine = make_engine(settings.url)
    with engine.begin() as conn:  # SQLite does not enforce foreign keys unless asked to
        conn.execute(text("INSERT INTO run_events (id, run_id, seq, kind) VALUES (1, 999, 1, 'x')"))
    engine.dispose()
    with pytest.raises(CommandError, match="1 problem"):
        maintain(settings)
    done = cli("maintenance", url=settings.url)
    assert done.code == 1
    assert "run_events row 1: no matching row in runs" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("engine", ["postgresql"])
def test_postgresql_invalid_index_is_a_problem(settings: Settings) -> None:
    database.init(settings)
    engine = make_engine(settings.url)
    with engine.begin() as conn:  # what a failed CREATE INDEX CONCURRENTLY leaves behind
        conn.execute(
            text(
                "UPDATE pg_index SET indisvalid = false "
                "WHERE indexrelid = 'ix_agents_owner_email'::regclass"
            )
        )
    engine.dispose()
    with pytest.raises(CommandError) as caught:
        maintain(settings, analyze=False)
    assert "index ix_agents_owner_email is invalid" in caught.value.lines[0]
