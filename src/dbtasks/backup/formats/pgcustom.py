"""pg_dump's custom archive format, uncompressed (``-Fc -Z0``), read as a stream.

Layout (``pg_backup_archiver.c``, ``pg_backup_custom.c``): the header ("PGDMP", version,
integer and offset sizes, format, compression, creation time, database and versions), the
table of contents (one entry per object: id, tag, kind, section, defining SQL, the COPY
statement for table data, ...), then the data blocks in TOC order, each a block type, the
entry's id and length-prefixed chunks ending with a zero length. Integers are a sign byte then
``int_size`` little-endian bytes; strings are a length (-1: NULL) then the bytes.

Table data is COPY text: one row per line, fields separated by tabs (a tab or newline inside
a value is escaped), so a row's bytes compare equal across dumps of the same server.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
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

_MAGIC = b"PGDMP"
_BLK_DATA = 1
_BLK_BLOBS = 3
_FORMAT_CUSTOM = 1
#: TOC entries that hold data, not schema (left out of the schema fingerprint).
_DATA_KINDS = {"TABLE DATA", "SEQUENCE SET", "BLOBS", "BLOB", "BLOB METADATA"}
_KEYS_COPY = b"COPY pg_temp.dbtasks_keys FROM stdin;"


def _truncated() -> BackupError:
    return BackupError("the PostgreSQL archive is truncated")


class _Input:
    """Bytes pulled from a stream on demand, with the archive's integer and string codings."""

    def __init__(self, stream: ReadStream) -> None:
        self._stream = stream
        self._buf = b""
        self._pos = 0
        self.int_size = 4

    def _fill(self, n: int) -> bool:
        while len(self._buf) - self._pos < n:
            data = self._stream.read(max(1 << 20, n))
            if not data:
                return False
            self._buf = self._buf[self._pos :] + data
            self._pos = 0
        return True

    def take(self, n: int) -> bytes:
        if not self._fill(n):
            raise _truncated()
        out = self._buf[self._pos : self._pos + n]
        self._pos += n
        return out

    def byte(self) -> int:
        return self.take(1)[0]

    def at_end(self) -> bool:
        return not self._fill(1)

    def int(self) -> int:
        raw = self.take(1 + self.int_size)
        value = int.from_bytes(raw[1:], "little")
        return -value if raw[0] else value

    def str(self) -> str | None:
        n = self.int()
        if n < 0:
            return None
        return self.take(n).decode("utf-8", "surrogateescape")


@dataclass
class TocEntry:
    dump_id: int
    had_dumper: bool
    tag: str
    desc: str
    defn: str
    copy_stmt: str
    namespace: str


class Archive:
    """One pass over a custom-format archive: header and TOC first, then the data blocks."""

    def __init__(self, stream: ReadStream) -> None:
        self._in = _Input(stream)
        self.toc: list[TocEntry] = []
        self._read_head()
        self._read_toc()

    def _read_head(self) -> None:
        head = self._in
        if head.take(5) != _MAGIC:
            raise BackupError("not a pg_dump custom-format archive")
        vmaj, vmin, vrev = head.byte(), head.byte(), head.byte()
        self.version = (vmaj, vmin, vrev)
        if (vmaj, vmin) < (1, 12) or (vmaj, vmin) > (1, 16):
            raise BackupError(f"unsupported pg_dump archive version {vmaj}.{vmin}")
        head.int_size = head.byte()
        self.off_size = head.byte()
        if head.byte() != _FORMAT_CUSTOM:
            raise BackupError("not a pg_dump custom-format archive")
        compression = head.byte() if (vmaj, vmin) >= (1, 15) else head.int()
        if compression != 0:
            raise BackupError("the archive is compressed by pg_dump; dbtasks reads -Z0 archives")
        for _ in range(7):  # creation time
            head.int()
        self.database = head.str()
        head.str()  # server version
        head.str()  # pg_dump version

    def _read_toc(self) -> None:
        head, version = self._in, self.version[:2]
        for _ in range(head.int()):
            dump_id = head.int()
            had_dumper = bool(head.int())
            head.str()  # catalog table oid
            head.str()  # oid
            tag = head.str() or ""
            desc = head.str() or ""
            head.int()  # section
            defn = head.str() or ""
            head.str()  # drop statement
            copy_stmt = head.str() or ""
            namespace = head.str() or ""
            head.str()  # tablespace
            head.str()  # table access method
            if version >= (1, 16):
                head.int()  # relkind
            head.str()  # owner
            head.str()  # "false": WITH OIDS
            while head.str() is not None:  # dependencies
                pass
            head.take(1 + self.off_size)  # data offset (unset in a piped archive)
            self.toc.append(TocEntry(dump_id, had_dumper, tag, desc, defn, copy_stmt, namespace))

    def _chunks(self) -> Iterator[bytes]:
        while True:
            n = self._in.int()
            if n == 0:
                return
            if n < 0:
                raise BackupError("the PostgreSQL archive is damaged (bad chunk length)")
            yield self._in.take(n)

    def blocks(self) -> Iterator[tuple[int, int, Iterator[bytes]]]:
        """(block type, dump id, chunks) for each data block; consume the chunks in order."""
        while not self._in.at_end():
            kind = self._in.byte()
            dump_id = self._in.int()
            if kind == _BLK_DATA:
                yield kind, dump_id, self._chunks()
            elif kind == _BLK_BLOBS:
                yield kind, dump_id, self._blobs()
            else:
                raise BackupError(f"the PostgreSQL archive is damaged (block type {kind})")

    def _blobs(self) -> Iterator[bytes]:
        while self._in.int() != 0:
            yield from self._chunks()


def _split_idents(text: str) -> list[str]:
    """``a, "b, c", "d""e"`` -> the identifiers as written (quotes kept)."""
    out, current, quoted = [], "", False
    for ch in text:
        if ch == '"':
            quoted = not quoted
        if ch == "," and not quoted:
            out.append(current.strip())
            current = ""
        else:
            current += ch
    if current.strip():
        out.append(current.strip())
    return out


_COPY = re.compile(r"^COPY (.+?) \((.*)\) FROM stdin;\s*$", re.DOTALL)
_PKEY = re.compile(
    r"^ALTER TABLE ONLY (.+?)\n\s+ADD CONSTRAINT .+ PRIMARY KEY \((.*?)\)", re.DOTALL
)


class PgDumpReader:
    """Rows of each table in a -Z0 custom archive, plus what a delta script needs."""

    def __init__(self, stream: ReadStream) -> None:
        self.archive = Archive(stream)
        toc = self.archive.toc
        keys: dict[str, list[str]] = {}
        for entry in toc:
            match = _PKEY.match(entry.defn) if entry.desc == "CONSTRAINT" else None
            if match:
                keys[match.group(1)] = _split_idents(match.group(2))
        self.table_infos: dict[int, TableInfo] = {}
        for entry in toc:
            if entry.desc != "TABLE DATA":
                continue
            copy = _COPY.match(entry.copy_stmt)
            columns = _split_idents(copy.group(2)) if copy else []
            qualified = copy.group(1) if copy else ""
            pkey = keys.get(qualified)
            key = None
            if pkey and all(c in columns for c in pkey):
                key = tuple(columns.index(c) for c in pkey)
            self.table_infos[entry.dump_id] = TableInfo(
                f"{entry.namespace}.{entry.tag}",
                key,
                {"copy": entry.copy_stmt, "qualified": qualified, "pkey": pkey or []},
            )
        self.settings = [e.defn for e in toc if e.desc in ("ENCODING", "STDSTRINGS", "SEARCHPATH")]
        self.sequences = [e.defn for e in toc if e.desc == "SEQUENCE SET"]
        self.matviews = [e.defn for e in toc if e.desc == "MATERIALIZED VIEW DATA"]
        self.has_blobs = any(e.desc in ("BLOBS", "BLOB", "BLOB METADATA") for e in toc)
        sha = hashlib.sha256()
        for entry in toc:
            if entry.desc == "TABLE DATA":
                parts = [entry.desc, entry.namespace, entry.tag, entry.copy_stmt]
            elif entry.desc in _DATA_KINDS:
                parts = [entry.desc, entry.namespace, entry.tag]
            else:
                parts = [entry.desc, entry.namespace, entry.tag, entry.defn]
            sha.update("\x00".join(parts).encode("utf-8", "surrogateescape") + b"\x01")
        self._schema = sha.hexdigest()

    def tables(self) -> Iterator[tuple[TableInfo, Iterator[bytes]]]:
        for kind, dump_id, chunks in self.archive.blocks():
            table = self.table_infos.get(dump_id)
            if kind != _BLK_DATA or table is None:
                for _ in chunks:  # large objects: not read row by row
                    pass
                continue
            yield table, _rows(chunks)

    def schema_sha256(self) -> str:
        return self._schema


def _rows(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """COPY text lines up to the end-of-data line ``\\.`` (which some versions store)."""
    carry = b""
    ended = False
    for data in chunks:
        parts = (carry + data if carry else data).split(b"\n")
        carry = parts.pop()
        for line in parts:
            if ended or line == b"\\.":
                ended = True
                continue
            yield line
    if carry and not ended:
        yield carry


class PgDeltaWriter:
    """A psql script that turns the parent's database into this backup's."""

    def __init__(self, out: WriteStream, dump: PgDumpReader) -> None:
        self._out = out
        self._dump = dump
        self._out.write(
            b"-- dbtasks incremental script (PostgreSQL). After restoring its parent chain:\n"
            b"--   psql -X -v ON_ERROR_STOP=1 -d DBNAME -f THIS_FILE\n"
            b"-- session_replication_role = replica: no triggers or foreign-key checks fire\n"
            b"-- while rows are replaced (needs a superuser, or SET privilege on it).\n"
        )
        for statement in dump.settings:
            self._out.write(statement.encode("utf-8", "surrogateescape").rstrip(b"\n") + b"\n")
        self._out.write(b"SET session_replication_role = replica;\nBEGIN;\n")

    def table(
        self, table: TableInfo, *, replace: bool, keys: Iterable[bytes], rows: Iterable[bytes]
    ) -> None:
        write = self._out.write
        qualified = str(table.meta["qualified"])
        copy = str(table.meta["copy"]).rstrip("\n")
        write(marker({"table": table.name, "replace": replace, "copy_lines": copy.count("\n")}))
        if replace:
            write(f"DELETE FROM ONLY {qualified};\n".encode("utf-8", "surrogateescape"))
        else:
            pkey = [str(c) for c in table.meta["pkey"]]
            cols = ", ".join(pkey)
            match = " AND ".join(f"t.{c} = k.{c}" for c in pkey)
            head = (
                f"CREATE TEMP TABLE dbtasks_keys ON COMMIT DROP AS "
                f"SELECT {cols} FROM ONLY {qualified} WITH NO DATA;\n"
            )
            write(head.encode("utf-8", "surrogateescape") + _KEYS_COPY + b"\n")
            for key in keys:
                write(key + b"\n")
            write(b"\\.\n")
            delete = (
                f"DELETE FROM ONLY {qualified} AS t USING pg_temp.dbtasks_keys AS k "
                f"WHERE {match};\nDROP TABLE pg_temp.dbtasks_keys;\n"
            )
            write(delete.encode("utf-8", "surrogateescape"))
        write(copy.encode("utf-8", "surrogateescape") + b"\n")
        for row in rows:
            write(row + b"\n")
        write(b"\\.\n")

    def close(self) -> None:
        for statement in [*self._dump.sequences, *self._dump.matviews]:
            self._out.write(statement.encode("utf-8", "surrogateescape").rstrip(b"\n") + b"\n")
        self._out.write(b"COMMIT;\n" + END_MARKER + b"\n")


class PgCustomFormat:
    """PostgreSQL: pg_dump -Fc -Z0 archives and psql delta scripts."""

    def read_dump(self, stream: ReadStream, workdir: Path) -> PgDumpReader:
        reader = PgDumpReader(stream)
        if reader.has_blobs:
            from dbtasks.backup.incremental import SchemaChangedError

            raise SchemaChangedError("the database has large objects, which incrementals skip")
        return reader

    def key_of(self, table: TableInfo, row: bytes) -> bytes:
        fields = row.split(b"\t")
        return b"\t".join(fields[i] for i in table.key or ())

    def delta_writer(self, out: WriteStream, dump: PgDumpReader) -> PgDeltaWriter:
        return PgDeltaWriter(out, dump)

    def read_delta(self, stream: ReadStream) -> Iterator[DeltaEvent]:
        it = lines(stream)
        table, copy_lines, ended = "", 0, False
        for line in it:
            if line.startswith(TABLE_MARKER):
                info = read_marker(line)
                table, copy_lines = str(info["table"]), int(info.get("copy_lines", 0))
                yield DeltaEvent("table", table=table, replace=bool(info.get("replace")))
            elif line == _KEYS_COPY:
                for key in _copy_block(it):
                    yield DeltaEvent("delete", table=table, data=key)
            elif line.startswith(b"COPY ") and table:
                for _ in range(copy_lines):
                    next(it, None)
                for row in _copy_block(it):
                    yield DeltaEvent("row", table=table, data=row)
            elif line == END_MARKER:
                ended = True
        if not ended:
            raise BackupError("the incremental script is truncated (no end marker)")

    def row_counter(self) -> None:
        return None


def _copy_block(it: Iterator[bytes]) -> Iterator[bytes]:
    for line in it:
        if line == b"\\.":
            return
        yield line
    raise BackupError("the incremental script is truncated (inside a COPY block)")
