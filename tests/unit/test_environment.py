"""The production guard, the confirmation guard, and the metadata table dbtasks keeps."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Connection, MetaData, Table, create_engine, select
from sqlalchemy.pool import StaticPool

from dbtasks.environment import (
    TABLE_NAME,
    include_object,
    metadata_table,
    read_environment,
    record_environment,
    refuse_production,
    require_confirmation,
)
from dbtasks.errors import ExitCode, RefusedError


@pytest.mark.parametrize(
    ("recorded", "configured", "message"),
    [
        ("production", "development", "is recorded as 'production'"),
        (None, "production", "is configured as 'production'"),
        ("production", "production", "is recorded as 'production'"),
    ],
)
def test_production_is_refused(recorded: str | None, configured: str, message: str) -> None:
    with pytest.raises(RefusedError) as caught:
        refuse_production(recorded, configured, action="delete-db", database="app", force=False)
    assert str(caught.value) == (
        f"delete-db refused: database 'app' {message} (add --force to override)"
    )
    assert caught.value.exit_code == ExitCode.REFUSED


@pytest.mark.parametrize(
    ("recorded", "configured", "force"),
    [
        ("production", "production", True),
        ("development", "development", False),
        (None, "development", False),
        ("staging", "qa", False),
        ("Production", "development", False),  # names are exact, as Rails compares them
    ],
)
def test_production_guard_lets_through(recorded: str | None, configured: str, force: bool) -> None:
    refuse_production(recorded, configured, action="x", database="app", force=force)


def test_confirmation() -> None:
    asked: list[str] = []

    def no(question: str) -> bool:
        asked.append(question)
        return False

    with pytest.raises(RefusedError, match=r"^recreate cancelled: not confirmed$"):
        require_confirmation(no, "Drop it?", action="recreate")
    assert asked == ["Drop it?"]
    require_confirmation(lambda _q: True, "Drop it?", action="recreate")


def test_include_object_leaves_out_only_dbtasks_table() -> None:
    table = Table(TABLE_NAME, MetaData())
    assert include_object(table, TABLE_NAME, "table", True, None) is False
    assert include_object(table, "agents", "table", True, None) is True
    assert include_object(None, TABLE_NAME, "index", True, None) is True


@pytest.fixture
def conn() -> Iterator[Connection]:
    engine = create_engine("sqlite://", poolclass=StaticPool)
    with engine.connect() as connection:
        yield connection
    engine.dispose()


def test_record_and_read_the_environment(conn: Connection) -> None:
    assert read_environment(conn) is None
    record_environment(conn, "staging")
    assert read_environment(conn) == "staging"
    record_environment(conn, "production")  # an update, not a second row
    assert read_environment(conn) == "production"
    rows = conn.execute(select(metadata_table.c.key, metadata_table.c.value)).all()
    assert [tuple(r) for r in rows] == [("environment", "production")]
