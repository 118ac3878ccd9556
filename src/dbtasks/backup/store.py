"""The backup folder: one sub-folder per backup, created under a hidden temporary name.

A backup is written into ``.<name>.partial/`` and becomes ``<name>/`` with a single rename once
its data and its manifest are on disk (fsynced), so a backup that was killed half-way never
looks finished: it stays a hidden ``.partial`` folder that ``db.backups`` reports and
``db.prune`` removes. Names sort by time and say what they hold::

    20261121T101500Z-app-full/
        manifest.json
        data.dump.zst.age        (PostgreSQL; MySQL: data.sql.gz, SQLite: data.sqlite.gz, ...)
        key.age                  (passphrase mode only)
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from dbtasks.backup.errors import BackupError, BackupUsageError
from dbtasks.backup.manifest import NAME as MANIFEST
from dbtasks.backup.manifest import Manifest

PARTIAL = ".partial"
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def backup_name(created: datetime, database: str, backup_type: str) -> str:
    """``20261121T101500Z-<database>-<type>``: sorts by time, says what it holds."""
    stem = Path(database).name
    if stem.endswith((".db", ".sqlite", ".sqlite3")):
        stem = stem.rsplit(".", 1)[0]
    slug = _UNSAFE.sub("_", stem).strip("._-")[:60] or "db"
    return f"{created.astimezone(UTC):%Y%m%dT%H%M%SZ}-{slug}-{backup_type}"


@dataclass
class StoredBackup:
    """A finished backup on disk: its folder and its (checked) manifest."""

    path: Path
    manifest: Manifest
    manifest_sha256: str

    @property
    def id(self) -> str:
        return self.manifest.id

    @property
    def size(self) -> int:
        return sum(f.size for f in self.manifest.files)

    @property
    def created(self) -> datetime:
        return datetime.fromisoformat(self.manifest.created_at)

    def file_path(self, name: str) -> Path:
        return self.path / name


def open_backup(path: Path) -> StoredBackup:
    """The backup at ``path``: its folder, its ``manifest.json``, or any file inside it."""
    folder = path if path.is_dir() else path.parent
    if not folder.exists():
        raise BackupUsageError(f"no backup at {str(path)!r}")
    if folder.name.endswith(PARTIAL):
        raise BackupError(f"{str(folder)!r} is an unfinished backup (it was interrupted)")
    manifest, sha = Manifest.read(folder)
    return StoredBackup(folder, manifest, sha)


@dataclass
class Listing:
    """What ``db.backups`` finds in a folder: finished backups and what is not one."""

    backups: list[StoredBackup]
    unfinished: list[Path]
    broken: list[tuple[Path, str]]


def scan(folder: Path) -> Listing:
    """Every backup in ``folder``, oldest first; interrupted and damaged ones apart."""
    backups: list[StoredBackup] = []
    unfinished: list[Path] = []
    broken: list[tuple[Path, str]] = []
    if not folder.is_dir():
        return Listing(backups, unfinished, broken)
    for entry in sorted(folder.iterdir()):
        if not entry.is_dir():
            continue
        if entry.name.endswith(PARTIAL):
            unfinished.append(entry)
            continue
        if not (entry / MANIFEST).exists():
            continue
        try:
            backups.append(open_backup(entry))
        except BackupError as exc:
            broken.append((entry, str(exc)))
    backups.sort(key=lambda b: (b.manifest.created_at, b.id))
    return Listing(backups, unfinished, broken)


def find_by_id(folder: Path, backup_id: str) -> StoredBackup | None:
    """The backup with this id in ``folder`` (its folder name, else any manifest's id)."""
    candidate = folder / backup_id
    if (candidate / MANIFEST).exists():
        return open_backup(candidate)
    return next((b for b in scan(folder).backups if b.id == backup_id), None)


def chain(backup: StoredBackup) -> list[StoredBackup]:
    """``backup`` and its ancestors, base first. A missing or replaced link is an error."""
    links = [backup]
    seen = {backup.id}
    current = backup
    while current.manifest.parent is not None:
        parent_id = current.manifest.parent["id"]
        parent = find_by_id(current.path.parent, parent_id)
        if parent is None:
            raise BackupError(
                f"backup {current.id} needs its parent {parent_id}, "
                f"which is missing from {str(current.path.parent)!r}"
            )
        if parent.manifest_sha256 != current.manifest.parent.get("manifest_sha256"):
            raise BackupError(
                f"backup {current.id}: its parent {parent_id} is not the backup it was "
                "made from (the parent's manifest changed)"
            )
        if parent.id in seen:
            raise BackupError(f"backup {current.id}: its chain of parents loops")
        seen.add(parent.id)
        links.append(parent)
        current = parent
    links.reverse()
    if links[0].manifest.type == "incremental" or (
        len(links) > 1 and links[0].manifest.type != "full"
    ):
        raise BackupError(f"backup {backup.id}: its chain does not start with a full backup")
    return links


@contextmanager
def new_backup(folder: Path, name: str) -> Iterator[Path]:
    """A fresh hidden folder to write a backup into; renamed to ``name`` on success.

    On an error the partial folder is removed. A killed process leaves it behind, hidden and
    named ``.partial``: never mistaken for a finished backup.
    """
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BackupError(f"cannot create backup folder {str(folder)!r}: {exc.strerror}") from exc
    final = folder / name
    if final.exists():
        raise BackupUsageError(f"{str(final)!r} already exists")
    partial = folder / f".{name}{PARTIAL}"
    shutil.rmtree(partial, ignore_errors=True)
    try:
        partial.mkdir()
    except OSError as exc:
        raise BackupError(f"cannot write in {str(folder)!r}: {exc.strerror}") from exc
    try:
        yield partial
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    _fsync_dir(partial)
    partial.rename(final)
    _fsync_dir(folder)


def _fsync_dir(path: Path) -> None:
    """Make a rename or a new file durable: fsync the folder that holds it."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def unique_name(folder: Path, name: str) -> str:
    """``name``, or ``name-2``, ``name-3``... when a backup already has it (same second)."""
    candidate, n = name, 1
    while (folder / candidate).exists() or (folder / f".{candidate}{PARTIAL}").exists():
        n += 1
        candidate = f"{name}-{n}"
    return candidate
