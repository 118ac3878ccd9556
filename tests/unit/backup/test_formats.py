"""Dump formats read row by row: MariaDB's two INSERT layouts, SQLite's exact literals."""

from __future__ import annotations

import io
import sqlite3

import pytest

from dbtasks.backup.create import match_tables
from dbtasks.backup.errors import BackupError
from dbtasks.backup.formats.sqldump import DumpRowCounter, SqlDumpReader, count_tuples, fields
from dbtasks.backup.formats.sqlitedb import literal
from dbtasks.backup.store import backup_name

MARIADB = b"""-- MariaDB dump
CREATE TABLE `t``x` (
  `id` int(11) NOT NULL,
  `v` text,
  PRIMARY KEY (`id`)
) ENGINE=InnoDB AUTO_INCREMENT=7 DEFAULT CHARSET=utf8mb4;
LOCK TABLES `t``x` WRITE;
INSERT INTO `t``x` VALUES
(1,'a),(\\'b'),
(2,NULL);
UNLOCK TABLES;
CREATE TABLE `m` (
  `a` int(11) DEFAULT NULL
) ENGINE=InnoDB;
INSERT INTO `m` VALUES (1),(2),(3);
-- Dump completed on 2026-01-01
"""


def test_row_counter_reads_both_insert_layouts() -> None:
    counter = DumpRowCounter()
    for i in range(0, len(MARIADB), 7):  # any chunking
        counter.feed(MARIADB[i : i + 7])
    assert counter.counts() == {"t`x": 2, "m": 3}
    truncated = DumpRowCounter()
    truncated.feed(MARIADB[:200])
    with pytest.raises(BackupError, match="ended early"):
        truncated.counts()


def test_dump_reader_rows_keys_and_schema() -> None:
    reader = SqlDumpReader(io.BytesIO(MARIADB))
    seen = {t.name: (t.key, list(rows)) for t, rows in reader.tables()}
    assert seen["t`x"] == ((0,), [b"(1,'a),(\\'b')", b"(2,NULL)"])
    assert seen["m"] == (None, [b"(1)", b"(2)", b"(3)"])
    assert reader.auto_increment == {"t`x": b"7"}
    same = SqlDumpReader(io.BytesIO(MARIADB.replace(b"AUTO_INCREMENT=7", b"AUTO_INCREMENT=9")))
    for _ in same.tables():
        pass
    assert same.schema_sha256() == reader.schema_sha256()


def test_tuples_and_fields_ignore_commas_in_strings() -> None:
    assert count_tuples(b"INSERT INTO `t` VALUES (1,'x),(y'),(2,'z');") == 2
    assert fields(b"(1,'a,b',NULL,0x00FF)") == [b"1", b"'a,b'", b"NULL", b"0x00FF"]


@pytest.mark.parametrize(
    "value",
    [
        None,
        0,
        -(2**63),
        0.1,
        1e300,
        -2.5e-8,
        float("inf"),
        "plain",
        "it's",
        "a\nb\x00c",
        "ü😀",
        b"\x00\xff",
        b"",
    ],
)
def test_sqlite_literals_are_exact(value: object) -> None:
    conn = sqlite3.connect(":memory:")
    got = conn.execute(f"SELECT {literal(value)}").fetchone()[0]  # our literal
    assert got == value
    assert b"\n" not in literal(value).encode()


def test_exclusion_globs_match_qualified_names() -> None:
    tables = ["public.orders", "public.order_items", "audit.orders", "logs"]
    assert match_tables(tables, ("orders",)) == ["public.orders", "audit.orders"]
    assert match_tables(tables, ("audit.*", "log?")) == ["audit.orders", "logs"]
    assert match_tables(tables, ("public.order_*",)) == ["public.order_items"]


def test_backup_names_sort_by_time_and_say_what_they_hold() -> None:
    from datetime import UTC, datetime

    early = backup_name(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), "/srv/app.db", "full")
    late = backup_name(datetime(2026, 1, 2, 3, 4, 6, tzinfo=UTC), "a b/c", "incremental")
    assert early == "20260102T030405Z-app-full"
    assert late == "20260102T030406Z-c-incremental"
    assert sorted([late, early]) == [early, late]
