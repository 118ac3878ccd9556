"""Connections without a server: driver messages without credentials, dialect lookup."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from dbtasks.dialects import dialect_for
from dbtasks.engine import connect, driver_message, make_engine
from dbtasks.errors import ConfigError, MissingDatabaseError


def _error(message: str) -> OperationalError:
    return OperationalError("SELECT 1", {}, Exception(message))


def test_driver_message_is_one_line_without_the_password() -> None:
    url = make_url("postgresql+psycopg://app:hunter2@db/app")
    error = _error("auth failed for hunter2\nDETAIL: more")
    assert driver_message(error, url) == "auth failed for ***"
    with_url = _error("cannot reach postgresql://app:hunter2@db/app")
    assert driver_message(with_url) == "cannot reach postgresql://app:***@db/app"


def test_unsupported_backend() -> None:
    with pytest.raises(ConfigError, match=r"unsupported database 'oracle' \(supported: "):
        dialect_for(make_url("oracle://u@h/d"))


@pytest.mark.parametrize(
    ("url", "name"),
    [("sqlite:///x.db", "sqlite"), ("postgresql+psycopg://h/d", "postgresql"),
     ("mysql+pymysql://h/d", "mysql"), ("mariadb+pymysql://h/d", "mysql")],
)  # fmt: skip
def test_dialect_lookup(url: str, name: str) -> None:
    assert dialect_for(make_url(url)).name == name


@pytest.mark.parametrize("url", ["postgresql+psycopg://h/d", "mysql+pymysql://h/d"])
def test_connect_timeouts_reach_the_driver(url: str) -> None:
    options = dialect_for(make_url(url)).engine_options(3)
    assert options["connect_args"]["connect_timeout"] == 3
    engine = make_engine(make_url(url), timeout=3)  # the options are ones create_engine takes
    engine.dispose()


def test_a_missing_sqlite_file_is_not_created(tmp_path: Path) -> None:
    path = tmp_path / "nope.db"
    with (
        pytest.raises(MissingDatabaseError, match=r"does not exist \(db\.init creates it\)"),
        connect(make_url(f"sqlite:///{path}")),
    ):
        pass
    assert not path.exists()
