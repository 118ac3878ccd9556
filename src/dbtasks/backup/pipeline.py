"""The one streaming pipeline, both ways.

Storing: bytes pushed in -> compressor -> age encryptor (optional) -> SHA-256 -> file.
Opening: file -> SHA-256 -> age decryptor (optional) -> decompressor -> bytes pulled out.

Chunks of about 1 MB flow through; nothing holds a whole backup, whatever its size.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from dbtasks.backup.codecs import Codec, CompressingWriter, decompressing_reader
from dbtasks.backup.crypto import SUFFIX as AGE_SUFFIX
from dbtasks.backup.crypto import Encryption, Keys, decrypting
from dbtasks.backup.errors import BackupError
from dbtasks.backup.manifest import StoredFile
from dbtasks.backup.store import StoredBackup
from dbtasks.backup.streams import CHUNK, HashingReader, HashingWriter
from dbtasks.runners.base import ReadStream, WriteStream


def file_name(stem: str, dump_suffix: str, codec: Codec, encryption: Encryption | None) -> str:
    """``data.dump.zst.age``: each suffix names the standard tool that undoes one layer."""
    return f"{stem}{dump_suffix}{codec.suffix}{AGE_SUFFIX if encryption else ''}"


class Sink:
    """What :func:`storing` yields: write bytes; ``stored`` describes the file afterwards."""

    def __init__(self, inner: CompressingWriter) -> None:
        self._inner = inner
        self.stored: StoredFile | None = None

    def write(self, data: bytes, /) -> int:
        return self._inner.write(data)


@contextmanager
def storing(
    folder: Path, name: str, role: str, codec: Codec, encryption: Encryption | None
) -> Iterator[Sink]:
    """A sink whose bytes end up compressed, maybe encrypted, hashed and fsynced in
    ``folder/name``. ``sink.stored`` is set once the block has ended without error."""
    path = folder / name
    try:
        handle = path.open("xb")
    except OSError as exc:
        raise BackupError(f"cannot create {str(path)!r}: {exc.strerror}") from exc
    with handle:
        hashing = HashingWriter(handle)
        with ExitStack() as stack:
            target: WriteStream = hashing
            if encryption is not None:
                from dbtasks.backup.crypto import encrypting

                target = stack.enter_context(encrypting(hashing, encryption))
            compressing = CompressingWriter(target, codec)
            sink = Sink(compressing)
            yield sink
            compressing.close()
        try:
            hashing.sync()
        except OSError as exc:
            raise BackupError(f"cannot write {str(path)!r}: {exc.strerror}") from exc
    sink.stored = StoredFile(name, role, hashing.sha256, hashing.size, compressing.raw_size)


def store_bytes(folder: Path, name: str, role: str, data: bytes) -> StoredFile:
    """A small file stored as it is (the passphrase-wrapped key)."""
    path = folder / name
    with path.open("xb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    return StoredFile(name, role, hashlib.sha256(data).hexdigest(), len(data))


def check_file(backup: StoredBackup, stored: StoredFile) -> None:
    """The stored file has the size and SHA-256 its manifest records, or BackupError."""
    path = backup.path / stored.name
    sha = hashlib.sha256()
    size = 0
    try:
        with path.open("rb") as handle:
            while chunk := handle.read(CHUNK):
                sha.update(chunk)
                size += len(chunk)
    except FileNotFoundError:
        raise BackupError(f"backup {backup.id}: {stored.name} is missing") from None
    except OSError as exc:
        raise BackupError(f"backup {backup.id}: cannot read {stored.name}: {exc.strerror}") from exc
    if size != stored.size:
        raise BackupError(
            f"backup {backup.id}: {stored.name} is {size} bytes, the manifest says "
            f"{stored.size} (truncated or damaged)"
        )
    if sha.hexdigest() != stored.sha256:
        raise BackupError(f"backup {backup.id}: {stored.name} fails its SHA-256 checksum")


@dataclass
class Opened:
    """A stored file being read back: ``stream`` gives the original bytes."""

    backup: StoredBackup
    stored: StoredFile
    stream: ReadStream
    _hashing: HashingReader

    def check(self) -> None:
        """Read what is left of the file and compare size and SHA-256 with the manifest."""
        while self._hashing.read(CHUNK):
            pass
        if self._hashing.size != self.stored.size or self._hashing.sha256 != self.stored.sha256:
            raise BackupError(
                f"backup {self.backup.id}: {self.stored.name} fails its SHA-256 checksum"
            )


@contextmanager
def opening(backup: StoredBackup, stored: StoredFile, keys: Keys | None) -> Iterator[Opened]:
    """Read a stored file back: decrypted (with ``keys``) and decompressed."""
    manifest = backup.manifest
    path = backup.path / stored.name
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise BackupError(f"backup {backup.id}: cannot read {stored.name}: {exc.strerror}") from exc
    with handle, ExitStack() as stack:
        hashing = HashingReader(handle)
        source: ReadStream = hashing
        if manifest.encryption is not None:
            label = f"backup {backup.id}"
            identities = (keys or Keys()).identities(manifest.encryption, backup.path, label)
            source = stack.enter_context(decrypting(hashing, identities, label))
        codec = str(manifest.compression.get("codec", "none"))
        stream = decompressing_reader(source, codec, raw_size=stored.raw_size)
        yield Opened(backup, stored, stream, hashing)
