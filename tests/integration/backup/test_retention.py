"""db.backups and db.prune on real backups: chains are kept whole, dry runs delete nothing."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from dbtasks.backup.create import BackupOptions, create
from dbtasks.backup.errors import BackupUsageError
from dbtasks.backup.retention import prune
from dbtasks.backup.store import scan
from dbtasks.settings import Settings
from tests.conftest import Cli
from tests.integration.backup.conftest import mutate, tools_runner


@pytest.mark.parametrize("engine", ["sqlite"])
def test_prune_keeps_what_kept_incrementals_need(filled: Settings, cli: Cli) -> None:
    runner = tools_runner()
    ids = [create(filled, runner, BackupOptions()).backup.id]  # full 1
    for seed in (1, 2):
        mutate(filled.url, seed)
        ids.append(create(filled, runner, BackupOptions(type="incremental")).backup.id)
    ids.append(create(filled, runner, BackupOptions()).backup.id)  # full 2
    mutate(filled.url, 3)
    ids.append(create(filled, runner, BackupOptions(type="incremental")).backup.id)
    # Keep the newest two (full 2 and its incremental): the first chain goes.
    dry = prune(filled.backup_dir, keep_last=2, dry_run=True)
    assert sorted(dry.deleted) == sorted(ids[:3])
    assert len(scan(filled.backup_dir).backups) == 5
    # Keep the newest four: incremental 1 is kept, so full 1 stays too, for the chain.
    kept = prune(filled.backup_dir, keep_last=4)
    assert kept.deleted == []
    assert kept.kept_for_chain == [ids[0]]
    done = cli("prune", "--keep-last", "1", "--format", "json", url=filled.url)
    assert done.code == 0, done.stderr
    body = json.loads(done.stdout)
    assert body["kept"] == sorted(ids[3:])
    assert body["kept_for_chain"] == [ids[3]]
    assert {b.id for b in scan(filled.backup_dir).backups} == set(ids[3:])


@pytest.mark.parametrize("engine", ["sqlite"])
def test_prune_removes_stale_interrupted_backups(filled: Settings) -> None:
    create(filled, tools_runner(), BackupOptions())
    stale = filled.backup_dir / ".20200101T000000Z-x-full.partial"
    fresh = filled.backup_dir / ".20990101T000000Z-x-full.partial"
    for folder in (stale, fresh):
        folder.mkdir()
    old = time.time() - 7200
    os.utime(stale, (old, old))
    result = prune(filled.backup_dir, keep_last=5)
    assert result.partials == [stale.name]
    assert not stale.exists()
    assert fresh.exists()


def test_prune_refuses_to_keep_nothing(tmp_path: Path) -> None:
    with pytest.raises(BackupUsageError, match="at least one"):
        prune(tmp_path, keep_last=0, keep_daily=0)
