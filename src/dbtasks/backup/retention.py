"""``db.backups`` lists the backup folder; ``db.prune`` deletes old backups, never a needed one.

Pruning works per database (backups of different databases never count against each other):
keep the newest ``keep_last`` backups, plus the newest backup of each of the ``keep_daily``
most recent days that have one; then keep every backup a kept incremental builds on, all
the way down its chain. Everything else goes, newest first, so an interrupted prune never
leaves an incremental without its parent. Interrupted backups (hidden ``.partial`` folders)
older than an hour go too; damaged backups are reported, never deleted.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dbtasks.backup.errors import BackupUsageError
from dbtasks.backup.store import StoredBackup, scan
from dbtasks.output import human_size

#: An interrupted backup's folder is left alone this long (it may still be being written).
STALE_PARTIAL_SECONDS = 3600


def _row(backup: StoredBackup) -> dict[str, Any]:
    m = backup.manifest
    return {
        "id": m.id,
        "path": str(backup.path),
        "created_at": m.created_at,
        "type": m.type,
        "database": m.database,
        "engine": m.engine,
        "size": backup.size,
        "parent": m.parent["id"] if m.parent else None,
        "revision": m.alembic_revision,
        "encrypted": m.encrypted,
        "compression": m.compression.get("codec"),
        "rows": sum(m.rows().values()),
    }


@dataclass
class BackupList:
    folder: Path
    backups: list[StoredBackup]
    unfinished: list[Path]
    broken: list[tuple[Path, str]]

    def as_dict(self) -> dict[str, Any]:
        return {
            "folder": str(self.folder),
            "backups": [_row(b) for b in self.backups],
            "unfinished": [str(p) for p in self.unfinished],
            "broken": [{"path": str(p), "error": e} for p, e in self.broken],
        }

    def text(self) -> list[str]:
        if not self.backups and not self.unfinished and not self.broken:
            return [f"no backups in {self.folder}"]
        lines = [
            f"{'time':20} {'type':11} {'size':>9} {'encrypted':9} {'revision':14} "
            f"{'parent':36} backup"
        ]
        for b in self.backups:
            r = _row(b)
            lines.append(
                f"{r['created_at'][:19]:20} {r['type']:11} {human_size(r['size']):>9} "
                f"{'yes' if r['encrypted'] else 'no':9} {','.join(r['revision'] or ['-']):14} "
                f"{r['parent'] or '-':36} {r['id']}"
            )
        lines += [f"unfinished (interrupted): {p}" for p in self.unfinished]
        lines += [f"damaged: {p}: {e}" for p, e in self.broken]
        return lines


def list_backups(folder: Path) -> BackupList:
    found = scan(folder)
    return BackupList(folder, found.backups, found.unfinished, found.broken)


@dataclass
class PruneResult:
    folder: Path
    dry_run: bool
    kept: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    kept_for_chain: list[str] = field(default_factory=list)
    partials: list[str] = field(default_factory=list)
    freed: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "folder": str(self.folder),
            "dry_run": self.dry_run,
            "kept": self.kept,
            "kept_for_chain": self.kept_for_chain,
            "deleted": self.deleted,
            "unfinished_removed": self.partials,
            "freed_bytes": self.freed,
        }

    def text(self) -> list[str]:
        verb = "would delete" if self.dry_run else "deleted"
        lines = [f"{verb} {b}" for b in self.deleted]
        lines += [f"{verb} interrupted backup {p}" for p in self.partials]
        lines += [f"kept {b} (an incremental that is kept needs it)" for b in self.kept_for_chain]
        lines.append(
            f"{verb} {len(self.deleted)} backup(s), {human_size(self.freed)}; kept {len(self.kept)}"
        )
        return lines


def _day(backup: StoredBackup) -> str:
    return backup.manifest.created_at[:10]


def _policy(backups: list[StoredBackup], keep_last: int, keep_daily: int) -> set[str]:
    """The ids the policy keeps, database by database (before adding chains)."""
    groups: dict[str, list[StoredBackup]] = {}
    for backup in backups:
        key = str(backup.manifest.extra.get("source") or backup.manifest.database)
        groups.setdefault(f"{backup.manifest.engine}:{key}", []).append(backup)
    keep: set[str] = set()
    for group in groups.values():
        newest = sorted(group, key=lambda b: b.manifest.created_at, reverse=True)
        keep.update(b.id for b in newest[:keep_last])
        days: list[str] = []
        for backup in newest:
            if len(days) >= keep_daily:
                break
            if _day(backup) not in days:
                days.append(_day(backup))
                keep.add(backup.id)
    return keep


def prune(
    folder: Path, *, keep_last: int, keep_daily: int = 0, dry_run: bool = False
) -> PruneResult:
    """Delete the backups the policy does not keep (``dry_run``: only say which)."""
    if keep_last < 0 or keep_daily < 0:
        raise BackupUsageError("--keep-last and --keep-daily cannot be negative")
    if keep_last == 0 and keep_daily == 0:
        raise BackupUsageError("--keep-last or --keep-daily must keep at least one backup")
    found = scan(folder)
    by_id = {b.id: b for b in found.backups}
    keep = _policy(found.backups, keep_last, keep_daily)
    result = PruneResult(folder, dry_run)
    chosen = set(keep)
    for backup_id in list(keep):
        current = by_id.get(backup_id)
        while current is not None and current.manifest.parent is not None:
            parent_id = current.manifest.parent["id"]
            if parent_id not in keep:
                keep.add(parent_id)
            current = by_id.get(parent_id)
    result.kept_for_chain = sorted(keep - chosen)
    result.kept = sorted(keep)
    doomed = [b for b in found.backups if b.id not in keep]
    doomed.sort(key=lambda b: b.manifest.created_at, reverse=True)  # children first
    for backup in doomed:
        result.deleted.append(backup.id)
        result.freed += backup.size
        if not dry_run:
            shutil.rmtree(backup.path)
    now = time.time()
    for partial in found.unfinished:
        if now - partial.stat().st_mtime > STALE_PARTIAL_SECONDS:
            result.partials.append(partial.name)
            if not dry_run:
                shutil.rmtree(partial, ignore_errors=True)
    return result
