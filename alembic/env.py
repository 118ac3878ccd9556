"""Alembic environment of the example service.

Two ways in: dbtasks hands over an open connection (``config.attributes["connection"]``) and
keeps logging to itself; plain ``alembic`` resolves the URL the same way dbtasks does
(``DATABASE_URL``, ``DATABASE_PASSWORD_FILE``, ``.env``, else the SQLite file under var/).
"""

from __future__ import annotations

from logging.config import fileConfig
from pathlib import Path
from typing import Any

from alembic import context
from sqlalchemy import Connection
from sqlalchemy.engine import URL

from agentsvc.models import Base
from dbtasks.engine import make_engine
from dbtasks.environment import include_object
from dbtasks.settings import load_settings

config = context.config
target_metadata = Base.metadata

if config.config_file_name and not config.attributes.get("dbtasks"):
    fileConfig(config.config_file_name)


def database_url() -> URL:
    url: URL | None = config.attributes.get("url")
    if url is None:
        url = load_settings(project_dir=Path(config.config_file_name or ".").resolve().parent).url
    return url


def configure(**kwargs: Any) -> None:
    context.configure(
        target_metadata=target_metadata,
        include_object=include_object,
        compare_type=True,
        compare_server_default=False,
        render_as_batch=True,  # SQLite needs table rebuilds for most ALTERs; others ignore it
        **kwargs,
    )


def run_offline() -> None:
    """Render SQL for ``--sql``: no connection, literal values."""
    configure(url=database_url(), literal_binds=True, dialect_opts={"paramstyle": "named"})
    with context.begin_transaction():
        context.run_migrations()


def run_on(connection: Connection) -> None:
    configure(connection=connection)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection: Connection | None = config.attributes.get("connection")
    if connection is not None:
        run_on(connection)
        return
    engine = make_engine(database_url())
    try:
        with engine.connect() as conn:
            run_on(conn)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
