"""Tasks for backups: backup, restore, verify-backup, backups, prune."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

from dbtasks.tasks.common import db_task, make_confirm

if TYPE_CHECKING:
    from dbtasks.backup.crypto import Keys
    from dbtasks.backup.progress import Progress
    from dbtasks.output import Result
    from dbtasks.runners.base import Runner
    from dbtasks.settings import Settings

KEY_HELP = {
    "identity": "age identity file to decrypt with (repeatable; or DBTASKS_BACKUP_IDENTITY_FILE)",
    "passphrase_file": "file holding the backup passphrase (or DBTASKS_BACKUP_PASSPHRASE[_FILE])",
}


def _progress(settings: Settings) -> Progress:
    from dbtasks.backup.progress import LineProgress, NoProgress, RichProgress

    if settings.quiet or settings.output_format == "json":
        return NoProgress()
    if sys.stderr.isatty():
        return RichProgress(sys.stderr)
    return LineProgress(sys.stderr)


def _keys(settings: Settings, identity: list[str] | None, passphrase_file: str | None) -> Keys:
    from dbtasks.backup.crypto import Keys

    files = [Path(i).expanduser() for i in identity or []] or list(settings.backup_identity_files)
    return Keys(files, _passphrase(settings, passphrase_file))


def _passphrase(settings: Settings, passphrase_file: str | None) -> str | None:
    from dbtasks.backup.errors import BackupUsageError

    if not passphrase_file:
        return settings.backup_passphrase
    try:
        text = Path(passphrase_file).expanduser().read_text(encoding="utf-8").rstrip("\r\n")
    except OSError as exc:
        raise BackupUsageError(
            f"cannot read passphrase file {passphrase_file!r}: {exc.strerror}"
        ) from exc
    if not text:
        raise BackupUsageError(f"passphrase file {passphrase_file!r} is empty")
    return text


def _runner(settings: Settings) -> Runner:
    from dbtasks.runners import runner_for

    return runner_for(settings)


@db_task(
    help={
        "path": "where to write the backup folder (default: the backup folder, db.backup_dir)",
        "type": "full (default), schema, or incremental (only what changed since --parent)",
        "compression": "gzip (default), bz2, zstd or none",
        "level": "compression level (gzip/bz2 1-9, zstd 1-19)",
        "no_data": "schema only (same as --type schema)",
        "exclude_table": "leave out tables matching this glob (repeatable)",
        "exclude_table_data": "keep these tables but leave out their rows (glob, repeatable)",
        "encrypt_to": "encrypt to this age/SSH public key or recipients file (repeatable)",
        "passphrase_file": "encrypt with the passphrase in this file (or the environment)",
        "parent": "incremental: the backup to build on (default: the newest of this database)",
        "verify": "check the new backup as db.verify-backup does",
        "identity": KEY_HELP["identity"] + "; to read an encrypted parent or verify",
    },
    iterable=["exclude_table", "exclude_table_data", "encrypt_to", "identity"],
    compose="host",
)
def backup(
    settings: Settings,
    path: str | None = None,
    type: str = "full",  # noqa: A002  # the flag is --type
    compression: str = "gzip",
    level: str | None = None,
    no_data: bool = False,
    exclude_table: list[str] | None = None,
    exclude_table_data: list[str] | None = None,
    encrypt_to: list[str] | None = None,
    passphrase_file: str | None = None,
    parent: str | None = None,
    verify: bool = False,
    identity: list[str] | None = None,
) -> Result:
    """Back up the database: full, schema or incremental; compressed; optionally encrypted."""
    from dbtasks.backup.codecs import Codec
    from dbtasks.backup.create import BackupOptions, create
    from dbtasks.backup.errors import BackupUsageError

    if no_data:
        if type not in ("full", "schema"):
            raise BackupUsageError("--no-data cannot go with --type incremental")
        type = "schema"  # noqa: A001  # the flag's value
    keys = _keys(settings, identity, passphrase_file)
    options = BackupOptions(
        type=type,
        codec=Codec.parse(compression, level),
        path=Path(path).expanduser() if path else None,
        exclude_tables=tuple(exclude_table or ()),
        exclude_data=tuple(exclude_table_data or ()),
        recipients=tuple(encrypt_to or settings.backup_recipients),
        passphrase=keys.passphrase,
        parent=parent,
        verify=verify,
        keys=keys,
    )
    return create(settings, _runner(settings), options, _progress(settings))


@db_task(
    help={
        "path": "the backup folder (or its manifest.json)",
        "target_db": "restore into this database (default: the configured one); SQLite: a file",
        "yes": "replace a non-empty target without asking",
        "clean": "replace a non-empty target (drop and recreate it)",
        "force": "also replace a database marked production",
        **KEY_HELP,
    },
    positional=["path"],
    iterable=["identity"],
    compose="host",
)
def restore(
    settings: Settings,
    path: str | None = None,
    target_db: str | None = None,
    yes: bool = False,
    clean: bool = False,
    force: bool = False,
    identity: list[str] | None = None,
    passphrase_file: str | None = None,
) -> Result:
    """Restore a backup (and the chain an incremental builds on), then check row counts."""
    from dbtasks.backup.errors import BackupUsageError
    from dbtasks.backup.restore import restore as run

    if not path:
        raise BackupUsageError("which backup? db.restore PATH")
    return run(
        settings,
        _runner(settings),
        Path(path).expanduser(),
        target_db=target_db,
        keys=_keys(settings, identity, passphrase_file),
        confirm=make_confirm(yes or clean),
        clean=clean,
        force=force,
        progress=_progress(settings),
    )


@db_task(
    help={
        "path": "the backup folder (or its manifest.json)",
        "restore": "also restore into a scratch database, compare, and drop it",
        **KEY_HELP,
    },
    positional=["path"],
    iterable=["identity"],
    compose="host",
)
def verify_backup(
    settings: Settings,
    path: str | None = None,
    restore: bool = False,
    identity: list[str] | None = None,
    passphrase_file: str | None = None,
) -> Result:
    """Check a backup: checksums, decryption, decompression, archive; --restore to try it."""
    from dbtasks.backup.errors import BackupUsageError
    from dbtasks.backup.store import open_backup
    from dbtasks.backup.verify import verify

    if not path:
        raise BackupUsageError("which backup? db.verify-backup PATH")
    return verify(
        settings,
        _runner(settings),
        open_backup(Path(path).expanduser()),
        _keys(settings, identity, passphrase_file),
        restore=restore,
        progress=_progress(settings),
    )


@db_task(
    help={"path": "the folder to list (default: the backup folder, db.backup_dir)"},
    compose="local",
)
def backups(settings: Settings, path: str | None = None) -> Result:
    """List the backups in the backup folder: time, type, size, parent, revision, encryption."""
    from dbtasks.backup.retention import list_backups

    return list_backups(Path(path).expanduser() if path else settings.backup_dir)


@db_task(
    help={
        "keep_last": "keep the newest N backups of each database",
        "keep_daily": "also keep the newest backup of each of the last D days that have one",
        "dry_run": "only say what would be deleted",
        "path": "the folder to prune (default: the backup folder, db.backup_dir)",
    },
    compose="local",
)
def prune(
    settings: Settings,
    keep_last: int = 0,
    keep_daily: int = 0,
    dry_run: bool = False,
    path: str | None = None,
) -> Result:
    """Delete old backups, never one that a kept incremental builds on."""
    from dbtasks.backup.retention import prune as run

    folder = Path(path).expanduser() if path else settings.backup_dir
    return run(folder, keep_last=int(keep_last), keep_daily=int(keep_daily), dry_run=dry_run)
