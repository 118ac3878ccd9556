"""Connections: one engine factory with a connect timeout, and driver errors made readable."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine, create_engine
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.pool import NullPool

from dbtasks.dialects import dialect_for
from dbtasks.errors import ConnectError, MissingDatabaseError
from dbtasks.settings import mask_password, render_url

log = logging.getLogger(__name__)


def make_engine(url: URL, *, timeout: int = 10, autocommit: bool = False) -> Engine:
    """An engine that fails within ``timeout`` seconds when the server is unreachable."""
    options = dialect_for(url).engine_options(timeout)
    if autocommit:
        options["isolation_level"] = "AUTOCOMMIT"
    # NullPool: a task opens few connections, and must not keep any when it ends.
    return create_engine(url, poolclass=NullPool, **options)


def driver_message(exc: DBAPIError, url: URL | None = None) -> str:
    """The first line of the driver's own message, with any credential removed."""
    text = (str(exc.orig) if exc.orig else str(exc)).strip().splitlines()[0]
    if url is not None and url.password:
        text = text.replace(url.password, "***")
    return mask_password(text)


@contextmanager
def connect(url: URL, *, timeout: int = 10, autocommit: bool = False) -> Iterator[Connection]:
    """Connect, turning "cannot connect" failures into :class:`ConnectError`.

    A database that does not exist raises :class:`MissingDatabaseError` (the hint: ``db.init``).
    """
    dialect = dialect_for(url)
    dialect.before_connect(url)
    engine = make_engine(url, timeout=timeout, autocommit=autocommit)
    try:
        try:
            conn = engine.connect()
        except OperationalError as exc:
            if dialect.is_missing_database(exc):
                raise MissingDatabaseError(
                    f"database {url.database!r} does not exist on {render_url(url)} "
                    "(db.init creates it)"
                ) from exc
            raise ConnectError(
                f"cannot connect to {render_url(url)}: {driver_message(exc, url)}"
            ) from exc
        with conn:
            yield conn
    finally:
        engine.dispose()
