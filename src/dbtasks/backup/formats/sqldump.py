"""mariadb-dump / mysqldump SQL text: rows are the tuples of its extended INSERT statements.

Two layouts exist. MariaDB's dump writes ``INSERT INTO `t` VALUES`` on a line of its own and
then one tuple per line, each ending in ``),`` or ``);``; MySQL's writes a whole statement,
tuples and all, on one line. String literals never hold a raw newline (the dump escapes it),
so in both layouts a line break can only fall between tuples.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

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

#: A quoted string literal in a dump (mariadb-dump escapes with backslashes).
STRING = re.compile(rb"'(?:[^'\\]|\\.)*'", re.DOTALL)
INSERT = b"INSERT INTO `"
COMPLETED = b"-- Dump completed"


def insert_table(line: bytes) -> str | None:
    """The table an ``INSERT INTO `t` VALUES ...`` line fills, else None."""
    if not line.startswith(INSERT):
        return None
    name = bytearray()
    i = len(INSERT)
    while i < len(line):
        c = line[i]
        if c == 0x60:  # backquote: doubled inside a name, else the end
            if line[i + 1 : i + 2] == b"`":
                name += b"`"
                i += 2
                continue
            break
        name.append(c)
        i += 1
    return name.decode("utf-8", "surrogateescape")


def count_tuples(line: bytes) -> int:
    """Rows in one extended INSERT: tuples separated by ``),(`` outside string literals."""
    start = line.find(b" VALUES (")
    if start < 0:
        return 0
    return STRING.sub(b"''", line[start:]).count(b"),(") + 1


class DumpRowCounter:
    """Counts each table's rows as a dump streams by (line by line, in bounded memory)."""

    def __init__(self) -> None:
        self._counts: dict[str, int] = {}
        self._carry = b""
        self._completed = False
        self._block: str | None = None  # the table whose one-tuple-per-line block is open

    def feed(self, data: bytes) -> None:
        data = self._carry + data
        lines = data.split(b"\n")
        self._carry = lines.pop()
        for line in lines:
            self._line(line)

    def _line(self, line: bytes) -> None:
        if self._block is not None:
            self._counts[self._block] += 1
            if line.endswith(b");"):
                self._block = None
            return
        table = insert_table(line)
        if table is not None:
            self._counts.setdefault(table, 0)
            if line.endswith(b" VALUES"):
                self._block = table
            else:
                self._counts[table] += count_tuples(line)
        elif line.startswith(COMPLETED):
            self._completed = True

    def counts(self) -> dict[str, int]:
        if self._carry:
            self._line(self._carry)
            self._carry = b""
        if not self._completed:
            raise BackupError("the SQL dump ended early: it lacks the dump's closing line")
        return dict(self._counts)


#: One tuple of a one-line extended INSERT (MySQL's layout); values hold no parentheses
#: outside string literals (binary columns are dumped as 0x... with --hex-blob).
TUPLE = re.compile(rb"\((?:'(?:[^'\\]|\\.)*'|[^'()])*\)", re.DOTALL)
FIELD = re.compile(rb"'(?:[^'\\]|\\.)*'|[^,']+", re.DOTALL)
_CREATE = re.compile(rb"^CREATE TABLE `((?:[^`]|``)+)` \($")
_COLUMN = re.compile(rb"^  `((?:[^`]|``)+)` ")
_PRIMARY = re.compile(rb"^  PRIMARY KEY \((.*)\)")
_AUTO_INCREMENT = re.compile(rb" AUTO_INCREMENT=(\d+)")
_INSERT_COLUMNS = re.compile(rb"^INSERT INTO `(?:[^`]|``)+` \((.*)\) VALUES")
_TRIGGER_NAME = re.compile(rb"TRIGGER (`(?:[^`]|``)+`|\S+)")
_NOT_SCHEMA = (b"INSERT INTO ", b"(", b"--", b"LOCK TABLES", b"UNLOCK TABLES", b"/*!40000 ALTER")


def _names(text: bytes) -> list[bytes]:
    return [m.group(0) for m in re.finditer(rb"`(?:[^`]|``)+`", text)]


class SqlDumpReader:
    """Rows of each table in a mariadb-dump / mysqldump stream."""

    def __init__(self, stream: ReadStream) -> None:
        self._lines = lines(stream)
        self._pending: bytes | None = None
        self._sha = hashlib.sha256()
        self.auto_increment: dict[str, bytes] = {}
        self.triggers: list[bytes] = []
        self.trigger_names: list[bytes] = []
        self.completed = False

    def _next(self) -> bytes | None:
        if self._pending is not None:
            line, self._pending = self._pending, None
            return line
        return next(self._lines, None)

    def _schema_line(self, line: bytes) -> None:
        if not line or line.startswith(_NOT_SCHEMA):
            return
        self._sha.update(_AUTO_INCREMENT.sub(b"", line) + b"\n")

    def tables(self) -> Iterator[tuple[TableInfo, Iterator[bytes]]]:
        while (line := self._next()) is not None:
            create = _CREATE.match(line)
            if create:
                yield self._table(line, create.group(1))
                continue
            if line.startswith(b"/*!50003 SET @saved_cs_client ") or line == b"DELIMITER ;;":
                self._routine(line)
                continue
            if line.startswith(COMPLETED):
                self.completed = True
            self._schema_line(line)
        if not self.completed:
            raise BackupError("the SQL dump is incomplete: it lacks the dump's closing line")

    def _table(self, first: bytes, raw_name: bytes) -> tuple[TableInfo, Iterator[bytes]]:
        name = raw_name.replace(b"``", b"`").decode("utf-8", "surrogateescape")
        columns: list[bytes] = []
        primary: list[bytes] = []
        self._schema_line(first)
        while (line := self._next()) is not None:
            column = _COLUMN.match(line)
            if column:
                columns.append(b"`" + column.group(1) + b"`")
            primary_match = _PRIMARY.match(line)
            if primary_match:
                primary = _names(primary_match.group(1))
            if line.startswith(b")"):
                auto = _AUTO_INCREMENT.search(line)
                if auto:
                    self.auto_increment[name] = auto.group(1)
                self._schema_line(line)
                break
            self._schema_line(line)
        table = TableInfo(name, None, {"columns": columns, "primary": primary})
        table.key = _key(columns, primary)
        return table, self._rows(table)

    def _rows(self, table: TableInfo) -> Iterator[bytes]:
        while (line := self._next()) is not None:
            if _CREATE.match(line) or line.startswith(COMPLETED):
                self._pending = line
                return
            if insert_table(line) is None:
                if line.startswith(b"/*!50003 SET @saved_cs_client ") or line == b"DELIMITER ;;":
                    self._routine(line)
                else:
                    self._schema_line(line)
                continue
            head, _, rest = line.partition(b" VALUES")
            listed = _INSERT_COLUMNS.match(line)
            if listed:
                table.meta["insert_columns"] = _names(listed.group(1))
                table.key = _key(table.meta["insert_columns"], table.meta["primary"])
            table.meta["insert"] = head + b" VALUES"
            if rest:  # MySQL: the whole statement on this line
                for match in TUPLE.finditer(rest):
                    yield match.group(0)
                continue
            while (row := self._next()) is not None:  # MariaDB: a tuple per line
                yield row[:-1]
                if row.endswith(b");"):
                    break

    def _routine(self, first: bytes) -> None:
        """A trigger (kept for delta scripts) or routine block, up to its closing SETs."""
        block = [first]
        while (line := self._next()) is not None:
            block.append(line)
            if line.startswith(b"/*!50003 SET collation_connection  = @saved_col_connection"):
                break
            if first == b"DELIMITER ;;" and line == b"DELIMITER ;":
                break
        for line in block:
            self._schema_line(line)
        text = b"\n".join(block)
        if b"*/ /*!50003 TRIGGER " in text:
            self.triggers.append(text)
            found = _TRIGGER_NAME.search(text.split(b"*/ /*!50003 ", 2)[-1])
            if found:
                self.trigger_names.append(found.group(1))

    def schema_sha256(self) -> str:
        return self._sha.hexdigest()


def _key(columns: list[bytes], primary: list[bytes]) -> tuple[int, ...] | None:
    if not primary or not all(c in columns for c in primary):
        return None
    return tuple(columns.index(c) for c in primary)


def fields(row: bytes) -> list[bytes]:
    """The SQL literals of one tuple ``(1,'a,b',NULL)``."""
    return FIELD.findall(row[1:-1])


_BATCH = 1000


def _quote(name: str) -> bytes:
    return b"`" + name.encode("utf-8", "surrogateescape").replace(b"`", b"``") + b"`"


class SqlDeltaWriter:
    """A script for the mariadb/mysql client that turns the parent's database into this one."""

    def __init__(self, out: WriteStream, dump: SqlDumpReader) -> None:
        self._out = out
        self._dump = dump
        out.write(
            b"-- dbtasks incremental script (MySQL/MariaDB). After restoring its parent chain:\n"
            b"--   mariadb DBNAME < THIS_FILE\n"
            b"-- Triggers are dropped while rows are replaced, then created again.\n"
            b"/*!40101 SET NAMES utf8mb4 */;\n/*!40103 SET TIME_ZONE='+00:00' */;\n"
            b"/*!40014 SET FOREIGN_KEY_CHECKS=0 */;\n/*!40014 SET UNIQUE_CHECKS=0 */;\n"
            b"/*!40101 SET SQL_MODE='NO_AUTO_VALUE_ON_ZERO' */;\n"
        )
        self._started = False

    def _start(self) -> None:
        if not self._started:
            for name in self._dump.trigger_names:
                self._out.write(b"DROP TRIGGER IF EXISTS " + name + b";\n")
            self._out.write(b"START TRANSACTION;\n")
            self._started = True

    def table(
        self, table: TableInfo, *, replace: bool, keys: Iterable[bytes], rows: Iterable[bytes]
    ) -> None:
        self._start()
        write = self._out.write
        write(marker({"table": table.name, "replace": replace}))
        quoted = _quote(table.name)
        if replace:
            write(b"DELETE FROM " + quoted + b";\n")
        else:
            columns = table.meta.get("insert_columns") or table.meta["columns"]
            pkey = b",".join(columns[i] for i in table.key or ())
            head = b"DELETE FROM " + quoted + b" WHERE (" + pkey + b") IN ("
            for batch in _batches(keys):
                write(head + b",".join(b"(" + k + b")" for k in batch) + b");\n")
        insert = table.meta.get("insert") or b"INSERT INTO " + quoted + b" VALUES"
        for batch in _batches(rows):
            write(insert + b"\n" + b",\n".join(batch) + b";\n")

    def close(self) -> None:
        self._start()
        write = self._out.write
        write(b"COMMIT;\n")
        for name, value in self._dump.auto_increment.items():
            write(b"ALTER TABLE " + _quote(name) + b" AUTO_INCREMENT=" + value + b";\n")
        for block in self._dump.triggers:
            write(block + b"\n")
        write(END_MARKER + b"\n")


def _batches(items: Iterable[bytes]) -> Iterator[list[bytes]]:
    batch: list[bytes] = []
    for item in items:
        batch.append(item)
        if len(batch) >= _BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


class SqlDumpFormat:
    """MySQL/MariaDB dumps as dbtasks reads them, and their delta scripts."""

    def row_counter(self) -> DumpRowCounter:
        return DumpRowCounter()

    def read_dump(self, stream: ReadStream, workdir: Path) -> SqlDumpReader:
        return SqlDumpReader(stream)

    def key_of(self, table: TableInfo, row: bytes) -> bytes:
        values = fields(row)
        return b",".join(values[i] for i in table.key or ())

    def delta_writer(self, out: WriteStream, dump: SqlDumpReader) -> SqlDeltaWriter:
        return SqlDeltaWriter(out, dump)

    def read_delta(self, stream: ReadStream) -> Iterator[DeltaEvent]:
        table, ended, in_rows = "", False, False
        for line in lines(stream):
            if in_rows:
                yield DeltaEvent("row", table=table, data=line[:-1])
                in_rows = not line.endswith(b");")
            elif line.startswith(TABLE_MARKER):
                info = read_marker(line)
                table = str(info["table"])
                yield DeltaEvent("table", table=table, replace=bool(info.get("replace")))
            elif line.startswith(b"DELETE FROM ") and b") IN (" in line:
                rest = line.split(b") IN (", 1)[1]
                for match in TUPLE.finditer(rest):
                    yield DeltaEvent("delete", table=table, data=match.group(0)[1:-1])
            elif insert_table(line) is not None and line.endswith(b" VALUES"):
                in_rows = True
            elif line == END_MARKER:
                ended = True
        if not ended:
            raise BackupError("the incremental script is truncated (no end marker)")
