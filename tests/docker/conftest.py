"""The compose project the compose-runner suite runs against, and helpers to look at it.

A session fixture brings ``docker-compose.yml`` up with the real Compose CLI
(:mod:`tests.docker.project`: ``.ci/compose-up`` under a project name and ports of its own)
and tears it down at the end, whatever happened (SIGTERM included). Without a Docker engine
the suite is skipped, or fails when ``DBTASKS_FORBID_SKIPS=1``.

The app service points at one database server at a time (``APP_DATABASE_URL``): the
``app_server`` fixture is parametrised over PostgreSQL and MariaDB/MySQL and recreates the
app container for each; tests are grouped by it, so that happens twice a session.
"""

from __future__ import annotations

import os
import secrets
import signal
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import URL
from sqlalchemy.pool import NullPool

from tests.docker.project import ComposeProject, ProjectError, engine_problem, images

ENGINES = ("postgresql", "mysql")
SERVICES = {"postgresql": "postgres", "mysql": "mysql"}


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt  # pytest then tears fixtures down, as on Ctrl-C


@pytest.fixture(scope="session")
def compose_project() -> Iterator[ComposeProject]:
    reason = engine_problem()
    if reason is not None:
        if os.environ.get("DBTASKS_FORBID_SKIPS") == "1":
            pytest.fail(f"the compose suite needs a Docker engine: {reason}")
        pytest.skip(f"the compose suite needs a Docker engine: {reason}")
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        try:
            project = ComposeProject.up()
        except ProjectError as exc:
            pytest.fail(str(exc))
        try:
            yield project
        finally:
            project.down()
    finally:
        signal.signal(signal.SIGTERM, previous)


def pytest_report_header(config: pytest.Config) -> list[str]:
    if engine_problem() is not None:
        return ["compose project: no Docker engine"]
    chosen = " ".join(f"{k}={v}" for k, v in images().items())
    return [f"compose project: a fresh dbtasks-test-* project; {chosen}"]


# --------------------------------------------------------------------------- databases


@dataclass
class AppDatabase:
    """The app service's database server, seen from this machine through its published port."""

    engine: str
    project: ComposeProject
    scratch: list[str] = field(default_factory=list)

    @property
    def password(self) -> str:
        return self.project.passwords[f"{SERVICES[self.engine]}_password"]

    def url(self, database: str = "app") -> URL:
        """As the app user (the one the app container connects as)."""
        driver = "postgresql+psycopg" if self.engine == "postgresql" else "mysql+pymysql"
        return URL.create(
            driver,
            username="app",
            password=self.password,
            host="127.0.0.1",
            port=self.project.ports[self.engine],
            database=database,
        )

    def admin_url(self) -> URL:
        """A user that may create and drop any database (MySQL's app user may not)."""
        if self.engine == "postgresql":
            return self.url("postgres")  # the image's POSTGRES_USER is a superuser
        return self.url("mysql").set(
            username="root", password=self.project.passwords["mysql_root_password"]
        )

    def admin(self, sql: str) -> None:
        engine = create_engine(self.admin_url(), poolclass=NullPool, isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                conn.execution_options(no_parameters=True).exec_driver_sql(sql)
        finally:
            engine.dispose()

    def quote(self, name: str) -> str:
        return f'"{name}"' if self.engine == "postgresql" else f"`{name}`"

    def drop(self, name: str) -> None:
        force = " WITH (FORCE)" if self.engine == "postgresql" else ""
        self.admin(f"DROP DATABASE IF EXISTS {self.quote(name)}{force}")

    def databases(self) -> set[str]:
        query = (
            "SELECT datname FROM pg_database"
            if self.engine == "postgresql"
            else "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA"
        )
        engine = create_engine(self.admin_url(), poolclass=NullPool)
        try:
            with engine.connect() as conn:
                return {str(row[0]) for row in conn.execute(text(query))}
        finally:
            engine.dispose()

    def new_scratch(self) -> str:
        """A database name for the local runner's side of a comparison (dropped after)."""
        name = f"dbt_{secrets.token_hex(5)}"
        self.scratch.append(name)
        if self.engine == "mysql":
            # Created here so that the app user may use it (it has no global CREATE right).
            self.admin(f"CREATE DATABASE {self.quote(name)} CHARACTER SET utf8mb4")
            self.admin(f"GRANT ALL PRIVILEGES ON {self.quote(name)}.* TO 'app'@'%'")
        return name

    def snapshot(self, database: str = "app") -> dict[str, Any] | None:
        """What a task changed: tables and columns, Alembic revision, recorded environment."""
        if database not in self.databases():
            return None
        engine = create_engine(self.url(database), poolclass=NullPool)
        try:
            with engine.connect() as conn:
                found = inspect(conn)
                tables = {
                    t: sorted((c["name"], str(c["type"])) for c in found.get_columns(t))
                    for t in found.get_table_names()
                }
                revision = (
                    sorted(str(r[0]) for r in conn.execute(text("SELECT * FROM alembic_version")))
                    if "alembic_version" in tables
                    else None
                )
                environment = (
                    conn.execute(
                        text("SELECT value FROM dbtasks_metadata WHERE `key` = 'environment'")
                        if self.engine == "mysql"
                        else text("SELECT value FROM dbtasks_metadata WHERE key = 'environment'")
                    ).scalar()
                    if "dbtasks_metadata" in tables
                    else None
                )
        finally:
            engine.dispose()
        return {"tables": tables, "revision": revision, "environment": environment}

    def execute(self, sql: str, database: str = "app") -> None:
        """Run a statement as the app user, committed."""
        engine = create_engine(self.url(database), poolclass=NullPool)
        try:
            with engine.begin() as conn:
                conn.execution_options(no_parameters=True).exec_driver_sql(sql)
        finally:
            engine.dispose()

    def rows(self, table: str, database: str = "app") -> int:
        engine = create_engine(self.url(database), poolclass=NullPool)
        try:
            with engine.connect() as conn:
                return int(conn.execute(text(f"SELECT COUNT(*) FROM {table}")).scalar_one())
        finally:
            engine.dispose()


@pytest.fixture(scope="session", params=ENGINES)
def app_server(request: pytest.FixtureRequest, compose_project: ComposeProject) -> AppDatabase:
    """The app service pointed at PostgreSQL, then at MariaDB/MySQL (its DATABASE_URL)."""
    engine = str(request.param)
    compose_project.use_app_database(engine)
    return AppDatabase(engine, compose_project)


@pytest.fixture
def app_db(app_server: AppDatabase, compose_project: ComposeProject) -> Iterator[AppDatabase]:
    """The app's database, dropped before the test; scratch databases dropped after."""
    compose_project.use_app_database(app_server.engine)  # another engine's test may have run
    app_server.drop("app")
    try:
        yield app_server
    finally:
        for name in app_server.scratch:
            app_server.drop(name)
        app_server.scratch.clear()
