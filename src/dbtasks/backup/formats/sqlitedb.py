"""SQLite database files, read row by row through sqlite3, and their delta scripts.

A row is written as the SQL literals of its values, with the rowid first for rowid tables
(``(42,'text',X'00ff',NULL)``): exact (floats in their shortest round-trip form, text with
control characters as hex) and one line each, so the same row always has the same bytes.
"""

from __future__ import annotations

import hashlib
import math
import re
import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from dbtasks.backup.errors import BackupError
from dbtasks.backup.formats.base import (
    END_MARKER,
    TABLE_MARKER,
    DeltaEvent,
    TableInfo,
    lines,
    marker,
    read_marker,
)
from dbtasks.runners.base import ReadStream, WriteStream

FIELD = re.compile(rb"'(?:[^']|'')*'|CAST\(X'[0-9A-F]*' AS TEXT\)|X'[0-9A-F]*'|[^,]+")
_ROWID_NAMES = ("rowid", "_rowid_", "oid")


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def literal(value: Any) -> str:
    """An exact SQL literal for a value SQLite returned."""
    if value is None:
        return "NULL"
    if isinstance(value, float):
        return ("9e999" if value > 0 else "-9e999") if math.isinf(value) else repr(value)
    if isinstance(value, bool | int):
        return str(int(value))
    if isinstance(value, bytes):
        return "X'" + value.hex().upper() + "'"
    return _text(str(value))


def _text(text: str) -> str:
    # Control characters (a newline would split the line) and bytes that were not UTF-8
    # (decoded as lone surrogates) travel as hex, cast back to TEXT: exact either way.
    if any(ord(c) < 32 or ord(c) == 127 or "\udc80" <= c <= "\udcff" for c in text):
        raw = text.encode("utf-8", "surrogateescape").hex().upper()
        return f"CAST(X'{raw}' AS TEXT)"
    return "'" + text.replace("'", "''") + "'"


class SqliteDumpReader:
    """Tables of an SQLite file written to ``workdir`` from the stream."""

    def __init__(self, stream: ReadStream, workdir: Path) -> None:
        path = workdir / f"read-{id(self)}.sqlite"
        with path.open("wb") as handle:
            while data := stream.read(1 << 20):
                handle.write(data)
        self.path = path
        self._conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        self._conn.text_factory = lambda b: b.decode("utf-8", "surrogateescape")
        master = self._conn.execute(
            "SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name"
        ).fetchall()
        sha = hashlib.sha256()
        for row in master:
            sha.update(repr(tuple(row)).encode("utf-8", "surrogateescape"))
        version = self._conn.execute("PRAGMA user_version").fetchone()[0]
        sha.update(f"user_version={version}".encode())
        self._schema = sha.hexdigest()
        self.triggers = [(str(r[1]), str(r[3])) for r in master if r[0] == "trigger" and r[3]]
        self._tables = [
            str(r[1])
            for r in master
            if r[0] == "table" and not str(r[3] or "").upper().startswith("CREATE VIRTUAL")
        ]

    def _info(self, name: str) -> TableInfo:
        columns = self._conn.execute(f"PRAGMA table_xinfo({quote(name)})").fetchall()
        visible = [c for c in columns if c[6] in (0,)]  # hidden 0: stored, not generated
        names = [str(c[1]) for c in visible]
        pk = sorted((c for c in visible if c[5]), key=lambda c: c[5])
        sql = self._conn.execute(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)
        ).fetchone()
        without_rowid = bool(sql and sql[0] and "WITHOUT ROWID" in str(sql[0]).upper())
        ipk = not without_rowid and len(pk) == 1 and str(pk[0][2]).upper() == "INTEGER"
        rowid = next((r for r in _ROWID_NAMES if r not in names), None)
        if without_rowid or ipk:
            key = tuple(names.index(str(c[1])) for c in pk)
            select = names
        elif rowid is not None:
            key = (0,)
            select = [rowid, *names]
        else:
            key, select = (), names
        return TableInfo(name, key or None, {"columns": select})

    def tables(self) -> Iterator[tuple[TableInfo, Iterator[bytes]]]:
        try:
            for name in self._tables:
                table = self._info(name)
                yield table, self._rows(table)
        finally:
            self._conn.close()

    def _rows(self, table: TableInfo) -> Iterator[bytes]:
        columns = ", ".join(quote(c) for c in table.meta["columns"])
        order = " ORDER BY 1" if table.key == (0,) else ""
        cursor = self._conn.execute(f"SELECT {columns} FROM {quote(table.name)}{order}")
        while batch := cursor.fetchmany(1000):
            for row in batch:
                yield ("(" + ",".join(literal(v) for v in row) + ")").encode(
                    "utf-8", "surrogateescape"
                )

    def schema_sha256(self) -> str:
        return self._schema


def fields(row: bytes) -> list[bytes]:
    return FIELD.findall(row[1:-1])


class SqliteDeltaWriter:
    """A script for the sqlite3 shell (or dbtasks) that turns the parent's file into this one."""

    def __init__(self, out: WriteStream, dump: SqliteDumpReader) -> None:
        self._out = out
        self._dump = dump
        out.write(
            b"-- dbtasks incremental script (SQLite). After restoring its parent chain:\n"
            b"--   sqlite3 DATABASE_FILE < THIS_FILE\n"
            b"-- Triggers are dropped while rows are replaced, then created again.\n"
            b"PRAGMA foreign_keys=OFF;\nBEGIN;\n"
        )
        for name, _sql in dump.triggers:
            out.write(f"DROP TRIGGER IF EXISTS {quote(name)};\n".encode("utf-8", "surrogateescape"))

    def table(
        self, table: TableInfo, *, replace: bool, keys: Iterable[bytes], rows: Iterable[bytes]
    ) -> None:
        write = self._out.write
        write(marker({"table": table.name, "replace": replace}))
        name = quote(table.name).encode("utf-8", "surrogateescape")
        columns = [quote(c).encode("utf-8", "surrogateescape") for c in table.meta["columns"]]
        if replace:
            write(b"DELETE FROM " + name + b";\n")
        else:
            pkey = b",".join(columns[i] for i in table.key or ())
            for key in keys:
                write(b"DELETE FROM " + name + b" WHERE (" + pkey + b")=(" + key + b");\n")
        head = b"INSERT INTO " + name + b"(" + b",".join(columns) + b") VALUES"
        for row in rows:
            write(head + row + b";\n")

    def close(self) -> None:
        for _name, sql in self._dump.triggers:
            self._out.write(sql.encode("utf-8", "surrogateescape") + b";\n")
        self._out.write(b"COMMIT;\n" + END_MARKER + b"\n")


class SqliteFormat:
    """SQLite files and sqlite3 delta scripts."""

    def read_dump(self, stream: ReadStream, workdir: Path) -> SqliteDumpReader:
        return SqliteDumpReader(stream, workdir)

    def key_of(self, table: TableInfo, row: bytes) -> bytes:
        values = fields(row)
        return b",".join(values[i] for i in table.key or ())

    def delta_writer(self, out: WriteStream, dump: SqliteDumpReader) -> SqliteDeltaWriter:
        return SqliteDeltaWriter(out, dump)

    def read_delta(self, stream: ReadStream) -> Iterator[DeltaEvent]:
        table, ended = "", False
        for line in lines(stream):
            if line.startswith(TABLE_MARKER):
                info = read_marker(line)
                table = str(info["table"])
                yield DeltaEvent("table", table=table, replace=bool(info.get("replace")))
            elif line.startswith(b"DELETE FROM ") and b")=(" in line:
                yield DeltaEvent("delete", table=table, data=line.split(b")=(", 1)[1][:-2])
            elif line.startswith(b"INSERT INTO ") and b") VALUES(" in line:
                yield DeltaEvent("row", table=table, data=line.split(b") VALUES", 1)[1][:-1])
            elif line == END_MARKER:
                ended = True
        if not ended:
            raise BackupError("the incremental script is truncated (no end marker)")

    def row_counter(self) -> None:
        return None
