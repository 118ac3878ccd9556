"""``db.restore``: check the whole chain, then load it into the target database.

Nothing touches the target until every file of the chain (the base full backup and each
incremental after it) has passed its SHA-256 check, its manifest and chain links have been
checked, each encrypted file has been opened with the given key, and the tools are present.
Then: the base dump goes to the engine's restore tool, each incremental's script to its
client, in order; finally the restored row counts are compared with the manifest.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.engine import URL

from dbtasks.backup.crypto import Keys
from dbtasks.backup.errors import BackupError, BackupUsageError
from dbtasks.backup.manifest import StoredFile
from dbtasks.backup.pipeline import check_file, opening
from dbtasks.backup.progress import NoProgress, Progress
from dbtasks.backup.store import StoredBackup, chain, open_backup
from dbtasks.backup.streams import CHUNK
from dbtasks.dialects import dialect_for
from dbtasks.dialects.base import Dialect
from dbtasks.engine import connect
from dbtasks.environment import Confirm, read_environment, refuse_production
from dbtasks.errors import MissingDatabaseError, RefusedError
from dbtasks.runners.base import Runner
from dbtasks.settings import Settings, render_url

log = logging.getLogger(__name__)


@dataclass
class RestoreResult:
    backup: str
    chain: list[str]
    target: str
    tables: dict[str, dict[str, int]]
    seconds: float
    replaced: bool = False
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "backup": self.backup,
            "chain": self.chain,
            "target": self.target,
            "replaced": self.replaced,
            "tables": self.tables,
            "rows": sum(t["restored"] for t in self.tables.values()),
            "seconds": round(self.seconds, 3),
        }

    def text(self) -> list[str]:
        rows = sum(t["restored"] for t in self.tables.values())
        via = f" (chain of {len(self.chain)})" if len(self.chain) > 1 else ""
        lines = [
            f"restored {self.backup}{via} into {self.target}: {len(self.tables)} table(s), "
            f"{rows} row(s), counts match the manifest ({self.seconds:.1f} s)"
        ]
        lines += [f"  {name}: {t['restored']} row(s)" for name, t in sorted(self.tables.items())]
        return [*self.notes, *lines]


def dialect_of(backup: StoredBackup) -> Dialect:
    return dialect_for(URL.create(backup.manifest.engine))


def check_chain(links: list[StoredBackup], keys: Keys | None, progress: Progress) -> None:
    """Every stored file of every link passes its checksum, and opens with ``keys``."""
    total = sum(f.size for link in links for f in link.manifest.files)
    progress.start("checking", total)
    for link in links:
        for stored in link.manifest.files:
            check_file(link, stored)
            progress.advance(stored.size)
    progress.finish()
    for link in links:
        if link.manifest.encryption is None:
            continue
        stored = payload_of(link)
        # The first bytes out prove the key: a wrong one fails here, not half-way in.
        with opening(link, stored, keys) as opened:
            opened.stream.read(1)


def payload_of(link: StoredBackup) -> StoredFile:
    stored = link.manifest.file("data") or link.manifest.file("delta")
    if stored is None:
        raise BackupError(f"backup {link.id}: its manifest lists no data file")
    return stored


def target_url(settings: Settings, target_db: str | None) -> URL:
    if not target_db:
        return settings.url
    if settings.backend == "sqlite":
        path = Path(target_db).expanduser()
        if not path.is_absolute():
            path = settings.project_dir / path
        return settings.url.set(database=str(path))
    return settings.url.set(database=target_db)


def _target_state(dialect: Dialect, url: URL, timeout: int) -> tuple[bool, int, str | None]:
    """(exists, number of tables, recorded environment) of the target database."""
    try:
        with connect(url, timeout=timeout) as conn:
            return True, len(dialect.backup_tables(conn)), read_environment(conn)
    except MissingDatabaseError:
        return False, 0, None


def restore(
    settings: Settings,
    runner: Runner,
    path: Path,
    *,
    target_db: str | None = None,
    keys: Keys | None = None,
    confirm: Confirm,
    clean: bool = False,
    force: bool = False,
    progress: Progress | None = None,
) -> RestoreResult:
    """Restore the backup at ``path`` (and its parents) into the target database."""
    progress = progress or NoProgress()
    started = time.monotonic()
    backup = open_backup(path)
    dialect = dialect_for(settings.url)
    if backup.manifest.engine != dialect.name:
        raise BackupUsageError(
            f"backup {backup.id} is of a {backup.manifest.engine} database; "
            f"the target is {dialect.name}"
        )
    links = chain(backup)
    check_chain(links, keys, progress)
    dialect.restore_tools(runner, links[0].manifest.tool, deltas=len(links) > 1)
    url = target_url(settings, target_db)
    exists, tables, recorded = _target_state(dialect, url, settings.connect_timeout)
    name = url.database or ""
    if exists and tables:
        refuse_production(
            recorded, settings.environment, action="restore", database=name, force=force
        )
        question = (
            f"Replace database {name!r} ({tables} table(s)) on {render_url(url)} "
            f"with backup {backup.id}?"
        )
        if not confirm(question):
            raise RefusedError(
                f"restore refused: target database {name!r} is not empty ({tables} table(s)); "
                "add --clean (or --yes) to replace it"
            )
    replaced = load_chain(
        dialect, runner, settings, url, links, keys, progress, exists=exists, empty=not tables
    )
    restored = compare_counts(dialect, url, settings.connect_timeout, backup)
    result = RestoreResult(
        backup.id,
        [link.id for link in links],
        render_url(url),
        restored,
        time.monotonic() - started,
        replaced=replaced,
    )
    if clean and not tables:
        result.notes.append(f"target {name!r} was empty: nothing to clean")
    return result


def load_chain(
    dialect: Dialect,
    runner: Runner,
    settings: Settings,
    url: URL,
    links: list[StoredBackup],
    keys: Keys | None,
    progress: Progress,
    *,
    exists: bool,
    empty: bool,
) -> bool:
    """Create (or recreate) the target and load the chain into it; True if data was replaced.

    A database this call created is dropped again when the load fails.
    """
    timeout = settings.connect_timeout
    created = False
    replaced = exists and not empty
    if dialect.name != "sqlite":  # SQLite's restore replaces the file in one rename
        if exists and not empty:
            others = dialect.sessions(url, timeout)
            if others:
                raise RefusedError(
                    f"restore refused: {len(others)} other session(s) connected to "
                    f"{url.database!r}; disconnect them first"
                )
            dialect.drop_database(url, timeout)
            exists = False
        if not exists:
            dialect.create_database(url, timeout)
            created = True
    tool_url = runner.tool_url(url)
    try:
        base = links[0]
        _feed(
            base,
            payload_of(base),
            keys,
            progress,
            "restoring",
            dialect.restore_dump(tool_url, runner, timeout),
        )
        for link in links[1:]:
            _feed(
                link,
                payload_of(link),
                keys,
                progress,
                f"applying {link.id}",
                dialect.apply_delta(tool_url, runner, timeout),
            )
    except BaseException:
        if created:
            log.warning("restore failed: dropping the database it created, %r", url.database)
            try:
                dialect.drop_database(url, timeout)
            except Exception as exc:  # noqa: BLE001  # the restore's own error matters more
                log.warning("could not drop %r: %s", url.database, exc)
        raise
    return replaced


def _feed(
    link: StoredBackup,
    stored: StoredFile,
    keys: Keys | None,
    progress: Progress,
    label: str,
    sink: Any,
) -> None:
    progress.start(label, stored.raw_size)
    with opening(link, stored, keys) as opened, sink as target:
        while chunk := opened.stream.read(CHUNK):
            target.write(chunk)
            progress.advance(len(chunk))
        opened.check()
    progress.finish()


def compare_counts(
    dialect: Dialect, url: URL, timeout: int, backup: StoredBackup
) -> dict[str, dict[str, int]]:
    """Restored row counts against the manifest's; a difference is a failed restore."""
    expected = backup.manifest.rows()
    with connect(url, timeout=timeout) as conn:
        present = set(dialect.backup_tables(conn))
        actual = dialect.backup_row_counts(conn, [t for t in expected if t in present])
    tables = {t: {"expected": n, "restored": actual.get(t, -1)} for t, n in expected.items()}
    wrong = [
        f"  {t}: manifest {v['expected']}, restored "
        + ("(missing)" if v["restored"] < 0 else str(v["restored"]))
        for t, v in sorted(tables.items())
        if v["expected"] != v["restored"]
    ]
    if wrong:
        raise BackupError(
            f"restored row counts differ from backup {backup.id}'s manifest in "
            f"{len(wrong)} table(s)",
            details={"tables": tables},
            lines=wrong,
        )
    return tables
