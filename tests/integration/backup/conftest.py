"""Fixtures for backup tests: a database full of awkward data, and content fingerprints.

The data covers what dumps get wrong: unicode beyond the BMP and combining marks, NULLs,
every byte value in binary columns, large text, JSON, timestamps with time zones, floats
and decimals, reserved-word and mixed-case identifiers, a table without a primary key and
a foreign key. Content is compared per table by a hash of every row, not by counts.
"""

from __future__ import annotations

import hashlib
import json
import os
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Double,
    ForeignKey,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    create_engine,
    inspect,
    select,
)
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import URL
from sqlalchemy.pool import NullPool

from dbtasks import database
from dbtasks.runners.base import Runner
from dbtasks.runners.local import LocalRunner
from dbtasks.settings import Settings

metadata = MetaData()
# Reserved words and mixed case, as table and column names.
select_table = Table(
    "select",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("order", String(200)),
    Column("Group Name", String(200)),
    Column("blob", LargeBinary),
    Column("doc", JSON(none_as_null=True)),
    # MySQL keeps time zones only in TIMESTAMP (stored as UTC); elsewhere timestamptz/text.
    Column("at", DateTime(timezone=True).with_variant(mysql.TIMESTAMP(fsp=6), "mysql")),
    Column("big", Text().with_variant(mysql.LONGTEXT(), "mysql")),
    Column("ratio", Double),
    Column("price", Numeric(12, 4)),
)
mixed_parent = Table(
    "MixedCase",
    metadata,
    Column("Id", Integer, primary_key=True, autoincrement=True),
    Column("CamelName", String(100), nullable=False),
)
child = Table(
    "child_rows",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("parent_id", Integer, ForeignKey("MixedCase.Id", ondelete="CASCADE")),
    Column("note", String(100)),
)
log_lines = Table(  # no primary key
    "log_lines",
    metadata,
    Column("level", String(10)),
    Column("message", String(200)),
)
TEST_TABLES = ("select", "MixedCase", "child_rows", "log_lines")

TEXTS = [
    "plain",
    "ünïcödé e\u0301 ß",
    "emoji \U0001f600 and CJK 漢字",
    "quotes ' \" ` \\ backslash",
    "tab\tnewline\ncarriage\rreturn",
    "),(' tricky tuple",
    "",
]


def fill(url: URL, rows: int = 40) -> None:
    """Create the test tables next to the example service's and fill them."""
    engine = create_engine(url, poolclass=NullPool)
    metadata.create_all(engine)
    base = datetime(2026, 3, 29, 1, 30, tzinfo=UTC)
    with engine.begin() as conn:
        for i in range(rows):
            conn.execute(
                select_table.insert().values(
                    order=None if i % 5 == 0 else TEXTS[i % len(TEXTS)] + str(i),
                    **{"Group Name": TEXTS[(i + 3) % len(TEXTS)]},
                    blob=None if i % 7 == 0 else bytes(range(256)) * (i % 3 + 1),
                    doc=None if i % 6 == 0 else {"n": i, "ü": TEXTS[i % 4], "list": [1, None]},
                    at=None if i % 9 == 0 else base + timedelta(hours=i * 7, microseconds=i),
                    big=("x" * 200_000 + str(i)) if i % 13 == 0 else TEXTS[i % 3],
                    ratio=None if i % 4 == 0 else [0.1, 1e300, -2.5e-8, 3.0][i % 3],
                    price=Decimal(f"{i}.{i:04d}"),
                )
            )
        for i in range(8):
            conn.execute(mixed_parent.insert().values(CamelName=f"P{i} ü"))
        parents = list(
            conn.execute(select(mixed_parent.c.Id).order_by(mixed_parent.c.Id)).scalars()
        )
        for i in range(rows):
            conn.execute(child.insert().values(parent_id=parents[i % 8], note=TEXTS[i % 5]))
        for i in range(12):
            conn.execute(log_lines.insert().values(level="info", message=f"line {i % 4}"))
    engine.dispose()


def mutate(url: URL, seed: int = 1) -> None:
    """Change, delete and add rows in every test table (the keyless one included)."""
    engine = create_engine(url, poolclass=NullPool)
    with engine.begin() as conn:
        conn.execute(
            select_table.update()
            .where(select_table.c.id.in_([2, 3, 10 + seed]))
            .values(order=f"changed {seed} ü", doc={"changed": seed})
        )
        conn.execute(select_table.delete().where(select_table.c.id.in_([5, 20 + seed])))
        conn.execute(select_table.insert().values(order=f"new {seed} \U0001f600", blob=b"\x00"))
        conn.execute(mixed_parent.delete().where(mixed_parent.c.Id == 1 + seed))
        conn.execute(child.delete().where(child.c.parent_id == 1 + seed))
        conn.execute(child.update().where(child.c.id == 30).values(note=f"upd {seed}"))
        conn.execute(log_lines.insert().values(level="warn", message=f"seed {seed}"))
    engine.dispose()


def short(by_name: dict[str, Any]) -> dict[str, Any]:
    """Manifest entries keyed by bare table name (PostgreSQL's are schema-qualified)."""
    return {name.rsplit(".", 1)[-1]: value for name, value in by_name.items()}


def _value(value: Any) -> Any:
    if isinstance(value, bytes | memoryview):
        return bytes(value).hex()
    if isinstance(value, datetime):
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value
        return value.astimezone(UTC).isoformat()
    if isinstance(value, Decimal):
        return str(value.normalize())
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True)
    return value


def content(url: URL) -> dict[str, tuple[int, str]]:
    """Per test table: (row count, SHA-256 over every row, in key order)."""
    engine = create_engine(url, poolclass=NullPool)
    out: dict[str, tuple[int, str]] = {}
    with engine.connect() as conn:
        present = set(inspect(conn).get_table_names())
        for table in metadata.sorted_tables:
            if table.name not in present:
                continue
            order = list(table.primary_key.columns) or list(table.columns)
            rows = conn.execute(select(table).order_by(*order)).all()
            sha = hashlib.sha256()
            for row in rows:
                sha.update(repr([_value(v) for v in row]).encode())
            out[table.name] = (len(rows), sha.hexdigest())
    engine.dispose()
    return out


@pytest.fixture
def filled(settings: Settings) -> Settings:
    """``settings`` of an initialised database holding the awkward test data."""
    database.init(settings)
    fill(settings.url)
    return settings


def tools_runner() -> Runner:
    """Where the dump tools run: here, or (``db_matrix``) inside the server's own container.

    The matrix container is labelled as a compose project, so the compose runner finds it:
    the tools there are the server's own version (a PostgreSQL 17 server needs pg_dump 17,
    which this machine may not have).
    """
    project = os.environ.get("DBTASKS_TEST_COMPOSE_PROJECT")
    service = os.environ.get("DBTASKS_TEST_COMPOSE_SERVICE")
    if project and service:
        from dbtasks.runners.compose import ComposeRunner

        return ComposeRunner.for_service(project, service)
    return LocalRunner()


@pytest.fixture
def runner() -> Runner:
    return tools_runner()


@pytest.fixture
def backup_dir(settings: Settings) -> Path:
    return settings.backup_dir
