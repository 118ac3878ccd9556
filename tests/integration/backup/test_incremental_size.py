"""The incremental's promise: after changing 1% of a million-row table's rows, spread all
over it, the incremental stores at most 10% of the full backup's bytes, and restores exactly."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine
from sqlalchemy.pool import NullPool

from dbtasks import database
from dbtasks.backup.codecs import Codec
from dbtasks.backup.create import BackupOptions, create
from dbtasks.backup.restore import restore
from dbtasks.settings import Settings
from tests.conftest import Server
from tests.integration.backup.conftest import tools_runner

ROWS = 1_000_000


def _rows_hash(url: object) -> tuple[int, str]:
    engine = create_engine(url, poolclass=NullPool)  # type: ignore[call-overload]
    with engine.connect() as conn:
        row = conn.exec_driver_sql(
            "SELECT count(*), md5(string_agg(md5(t::text), '' ORDER BY id)) FROM big t"
        ).one()
    engine.dispose()
    return int(row[0]), str(row[1])


@pytest.mark.parametrize("engine", ["postgresql"])
def test_one_percent_changed_stores_under_ten_percent(settings: Settings, server: Server) -> None:
    database.init(settings)
    engine = create_engine(settings.url, poolclass=NullPool)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TABLE big (id integer PRIMARY KEY, account integer NOT NULL, "
            "label text NOT NULL, amount numeric(12, 2), updated timestamptz NOT NULL)"
        )
        conn.exec_driver_sql(
            f"INSERT INTO big SELECT g, mod(g, 977), md5(g::text), g / 7.0, "
            f"'2026-01-01'::timestamptz + g * interval '1 second' "
            f"FROM generate_series(1, {ROWS}) g"
        )
    runner = tools_runner()
    full = create(settings, runner, BackupOptions(codec=Codec.parse("zstd")))
    with engine.begin() as conn:
        # 1% of the rows, spread evenly over the whole table (the worst case for chunking).
        conn.exec_driver_sql("UPDATE big SET label = 'changed ' || id WHERE mod(id, 100) = 7")
    engine.dispose()
    incremental = create(
        settings, runner, BackupOptions(type="incremental", codec=Codec.parse("zstd"))
    )
    assert incremental.backup.manifest.type == "incremental"
    ratio = incremental.backup.size / full.backup.size
    # Shown with pytest -rA: the figure the README quotes.
    print(f"full {full.backup.size} B, incremental {incremental.backup.size} B: {ratio:.2%}")
    assert ratio <= 0.10, (incremental.backup.size, full.backup.size)
    changed = incremental.backup.manifest.incremental
    assert changed is not None
    assert changed["tables"]["public.big"]["written"] == ROWS // 100
    target = f"{settings.database}_big"
    try:
        restore(settings, runner, incremental.backup.path, target_db=target, confirm=lambda q: True)
        assert _rows_hash(settings.url.set(database=target)) == _rows_hash(settings.url)
    finally:
        server.drop_database(target)
