"""``db.verify-backup``: is this backup whole, readable and restorable?

1. Every file of the chain has the size and SHA-256 its manifest records; manifests carry
   their own checksum and each link names its parent's manifest checksum.
2. Every file decrypts and decompresses to its end (length checked against the manifest).
3. The dump is a complete archive, checked by the engine's own tool where there is one
   (``pg_restore`` reads every data block; a truncated archive fails), and each
   incremental's script parses to its end.
4. With ``restore``: the chain is restored into a scratch database, its row counts compared
   with the manifest, and the scratch database dropped.
"""

from __future__ import annotations

import logging
import secrets
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dbtasks.backup.crypto import Keys
from dbtasks.backup.errors import BackupError
from dbtasks.backup.pipeline import opening
from dbtasks.backup.progress import NoProgress, Progress
from dbtasks.backup.restore import check_chain, compare_counts, dialect_of, load_chain, payload_of
from dbtasks.backup.store import StoredBackup, chain
from dbtasks.backup.streams import CHUNK
from dbtasks.errors import CommandError
from dbtasks.runners.base import Runner
from dbtasks.settings import Settings, render_url

log = logging.getLogger(__name__)


@dataclass
class Verification:
    backup: str
    chain: list[str]
    checks: list[str] = field(default_factory=list)
    restored: dict[str, dict[str, int]] | None = None
    skipped: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "backup": self.backup,
            "chain": self.chain,
            "checks": self.checks,
            "skipped": self.skipped,
            "restored_tables": self.restored,
        }

    def text(self) -> list[str]:
        lines = [f"verified {self.backup}: " + "; ".join(self.checks)]
        lines += [f"  not checked: {s}" for s in self.skipped]
        return lines


def verify(
    settings: Settings,
    runner: Runner,
    backup: StoredBackup,
    keys: Keys | None,
    *,
    restore: bool = False,
    progress: Progress | None = None,
    allow_no_key: bool = False,
) -> Verification:
    """Check ``backup`` (and its chain) as far as the keys allow; BackupError on any defect."""
    progress = progress or NoProgress()
    links = chain(backup)
    result = Verification(backup.id, [link.id for link in links])
    encrypted = any(link.manifest.encryption for link in links)
    if encrypted and allow_no_key and not _has_keys(keys):
        _checksums(links)
        result.checks.append(f"checksums of {len(links)} backup(s)")
        result.skipped.append("decryption and archive checks (encrypted; no key given)")
        return result
    check_chain(links, keys, progress)
    result.checks.append(f"checksums of {len(links)} backup(s)")
    dialect = dialect_of(backup)
    base = links[0]
    if dialect.name != "sqlite":
        dialect.restore_tools(runner, base.manifest.tool, deltas=False)
    try:
        with opening(base, payload_of(base), keys) as opened, dialect.check_dump(runner) as checker:
            progress.start("verifying", opened.stored.raw_size)
            while chunk := opened.stream.read(CHUNK):
                checker.write(chunk)
                progress.advance(len(chunk))
            opened.check()
    except BackupError:
        raise
    except CommandError as exc:
        raise BackupError(f"backup {base.id}: the dump is not a complete archive: {exc}") from exc
    finally:
        progress.finish()
    result.checks.append("decrypted and decompressed" if encrypted else "decompressed")
    result.checks.append(f"{base.manifest.tool.get('name', 'dump')} archive complete")
    if len(links) > 1:
        fmt = dialect.backup_format()
        for link in links[1:]:
            with opening(link, payload_of(link), keys) as opened:
                for _event in fmt.read_delta(opened.stream):
                    pass
                opened.check()
        result.checks.append(f"{len(links) - 1} incremental script(s) complete")
    if restore:
        result.restored = _scratch_restore(settings, runner, links, keys, progress)
        result.checks.append("restored into a scratch database: row counts match")
    return result


def _has_keys(keys: Keys | None) -> bool:
    return keys is not None and bool(keys.identity_files or keys.passphrase)


def _checksums(links: list[StoredBackup]) -> None:
    from dbtasks.backup.pipeline import check_file

    for link in links:
        for stored in link.manifest.files:
            check_file(link, stored)


def _scratch_restore(
    settings: Settings,
    runner: Runner,
    links: list[StoredBackup],
    keys: Keys | None,
    progress: Progress,
) -> dict[str, dict[str, int]]:
    dialect = dialect_of(links[-1])
    if dialect.name != settings.backend:
        raise BackupError(
            f"--restore needs a {dialect.name} server; the configured database is "
            f"{settings.backend}"
        )
    dialect.restore_tools(runner, links[0].manifest.tool, deltas=len(links) > 1)
    with tempfile.TemporaryDirectory(prefix="dbtasks-verify-") as folder:
        name = f"dbtasks_verify_{secrets.token_hex(6)}"
        if dialect.name == "sqlite":
            url = settings.url.set(database=str(Path(folder) / f"{name}.db"))
        else:
            url = settings.url.set(database=name)
        log.info("restoring into scratch database %s", render_url(url))
        try:
            load_chain(
                dialect, runner, settings, url, links, keys, progress, exists=False, empty=True
            )
            return compare_counts(dialect, url, settings.connect_timeout, links[-1])
        finally:
            if dialect.database_exists(url, settings.connect_timeout):
                dialect.drop_database(url, settings.connect_timeout)
