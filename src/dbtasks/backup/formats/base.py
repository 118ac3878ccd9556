"""What the incremental machinery needs from an engine's dump format.

A :class:`DumpFormat` reads a full dump row by row (each row as the exact bytes the dump
holds, so two dumps of the same row compare equal byte for byte), tells a row's primary key,
and writes and reads back *delta scripts*: plain SQL the engine's own client runs to turn the
parent's database into this backup's.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from dbtasks.runners.base import ReadStream, WriteStream


@dataclass
class TableInfo:
    """A table whose rows a dump holds."""

    name: str
    #: Positions of the primary-key fields in a row; None when the table has no key.
    key: tuple[int, ...] | None
    #: Format-specific details (the COPY statement, the column list...).
    meta: dict[str, Any] = field(default_factory=dict)


class DumpReader(Protocol):
    """One pass over a full dump."""

    def tables(self) -> Iterator[tuple[TableInfo, Iterator[bytes]]]:
        """Each table with data, and an iterator over its rows (consume it before the next)."""
        ...

    def schema_sha256(self) -> str:
        """A fingerprint of everything but the data (valid once :meth:`tables` is exhausted)."""
        ...


class DeltaWriter(Protocol):
    """Writes a delta script: per changed table, keys to delete, then rows to insert."""

    def table(
        self, table: TableInfo, *, replace: bool, keys: Iterable[bytes], rows: Iterable[bytes]
    ) -> None:
        """A table's section: delete ``keys`` (with ``replace``: every row), insert ``rows``."""
        ...

    def close(self) -> None:
        """End the script (sequence values, triggers, commit, the end marker)."""
        ...


@dataclass
class DeltaEvent:
    """One step read back from a delta script."""

    kind: str  # "table", "delete", "row"
    table: str = ""
    replace: bool = False
    data: bytes = b""


class DumpFormat(Protocol):
    """An engine's dump format, as the incremental backup reads and extends it."""

    def read_dump(self, stream: ReadStream, workdir: Path) -> DumpReader: ...

    def key_of(self, table: TableInfo, row: bytes) -> bytes:
        """The bytes of ``row``'s primary key (``table.key`` is not None)."""
        ...

    def delta_writer(self, out: WriteStream, dump: Any) -> DeltaWriter:
        """``dump``: the reader this format's ``read_dump`` returned, read to its end."""
        ...

    def read_delta(self, stream: ReadStream) -> Iterator[DeltaEvent]:
        """The script's steps; raises if it does not end with the end marker."""
        ...

    def row_counter(self) -> RowCounter | None:
        """For engines whose row counts come from the dump stream (see ``Snapshot``)."""
        ...


class RowCounter(Protocol):
    """Watches a full dump go by and counts each table's rows."""

    def feed(self, data: bytes) -> None: ...

    def counts(self) -> dict[str, int]:
        """The counts; raises if the dump ended early."""
        ...


#: The last line of every delta script: a script without it was cut short.
END_MARKER = b"-- dbtasks delta end"
#: Starts the line before each table's section: ``-- dbtasks {json}``.
TABLE_MARKER = b"-- dbtasks {"


def lines(stream: ReadStream, chunk: int = 1 << 20) -> Iterator[bytes]:
    """The lines of a stream, without their newline (a last line without one included)."""
    carry = b""
    while data := stream.read(chunk):
        parts = (carry + data).split(b"\n")
        carry = parts.pop()
        yield from parts
    if carry:
        yield carry


def marker(info: dict[str, Any]) -> bytes:
    import json

    return b"-- dbtasks " + json.dumps(info, ensure_ascii=True, sort_keys=True).encode() + b"\n"


def read_marker(line: bytes) -> dict[str, Any]:
    import json

    from dbtasks.backup.errors import BackupError

    try:
        info = json.loads(line[len(b"-- dbtasks ") :])
    except ValueError as exc:
        raise BackupError("incremental script: unreadable table marker") from exc
    if not isinstance(info, dict):
        raise BackupError("incremental script: unreadable table marker")
    return info
