"""What must never happen: a damaged or unreadable backup touching the target, a killed
backup looking finished, a password in argv, logs or manifests."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from dbtasks.backup.codecs import Codec
from dbtasks.backup.create import BackupOptions, create
from dbtasks.backup.crypto import Keys
from dbtasks.backup.errors import BackupError
from dbtasks.backup.manifest import Manifest
from dbtasks.backup.restore import restore, target_url
from dbtasks.backup.store import StoredBackup, open_backup
from dbtasks.backup.verify import verify
from dbtasks.settings import Settings
from tests.conftest import Cli, Server, assert_failure
from tests.integration.backup.conftest import content, fill, mutate, tools_runner


def _yes(question: str) -> bool:
    return True


@pytest.fixture
def target(filled: Settings, server: Server) -> object:
    """A non-empty target database, restored from a first backup, dropped afterwards."""
    name = (
        str(filled.project_dir / "target.db")
        if server.engine == "sqlite"
        else f"{filled.database}_tgt"
    )
    first = create(filled, tools_runner(), BackupOptions(codec=Codec.parse("none")))
    restore(filled, tools_runner(), first.backup.path, target_db=name, confirm=_yes)
    yield name
    if server.engine != "sqlite":
        server.drop_database(name)


def _data(backup: StoredBackup) -> Path:
    stored = backup.manifest.file("data") or backup.manifest.file("delta")
    assert stored is not None
    return backup.path / stored.name


def _refused(
    settings: Settings, backup: StoredBackup, target: str, match: str, **kw: object
) -> None:
    """The restore fails with ``match`` and the target's content is exactly as before."""
    url = target_url(settings, target)
    before = content(url)
    with pytest.raises(BackupError, match=match):
        restore(settings, tools_runner(), backup.path, target_db=target, confirm=_yes, **kw)  # type: ignore[arg-type]
    assert content(url) == before


def test_flipped_byte_is_refused_before_the_target_is_touched(
    filled: Settings, target: str
) -> None:
    mutate(filled.url)
    backup = create(filled, tools_runner(), BackupOptions(codec=Codec.parse("gzip"))).backup
    data = _data(backup)
    raw = bytearray(data.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    data.write_bytes(bytes(raw))
    _refused(filled, backup, target, "SHA-256")
    with pytest.raises(BackupError, match="SHA-256"):
        verify(filled, tools_runner(), backup, None)


def test_truncated_file_is_refused(filled: Settings, target: str) -> None:
    mutate(filled.url)
    backup = create(filled, tools_runner(), BackupOptions(codec=Codec.parse("zstd"))).backup
    data = _data(backup)
    data.write_bytes(data.read_bytes()[:-50])
    _refused(filled, backup, target, "truncated or damaged")


def test_damaged_manifest_is_refused(filled: Settings, target: str) -> None:
    backup = create(filled, tools_runner(), BackupOptions()).backup
    path = backup.path / "manifest.json"
    path.write_text(path.read_text().replace('"type": "full"', '"type": "schema"'))
    with pytest.raises(BackupError, match="checksum does not match"):
        restore(filled, tools_runner(), backup.path, target_db=target, confirm=_yes)


def test_wrong_key_is_refused(filled: Settings, target: str, tmp_path: Path) -> None:
    import pyrage

    right, wrong = pyrage.x25519.Identity.generate(), pyrage.x25519.Identity.generate()
    key = tmp_path / "wrong.txt"
    key.write_text(str(wrong) + "\n")
    mutate(filled.url)
    options = BackupOptions(recipients=(str(right.to_public()),))
    backup = create(filled, tools_runner(), options).backup
    _refused(filled, backup, target, "wrong key", keys=Keys([key]))
    _refused(filled, backup, target, "is encrypted: give --identity")


def test_missing_parent_is_refused(filled: Settings, target: str) -> None:
    import shutil

    full = create(filled, tools_runner(), BackupOptions()).backup
    mutate(filled.url)
    incremental = create(filled, tools_runner(), BackupOptions(type="incremental")).backup
    shutil.rmtree(full.path)
    _refused(filled, incremental, target, "needs its parent .* which is missing")


def test_replaced_parent_is_refused(filled: Settings, target: str) -> None:
    full = create(filled, tools_runner(), BackupOptions()).backup
    mutate(filled.url)
    incremental = create(filled, tools_runner(), BackupOptions(type="incremental")).backup
    manifest, _ = Manifest.read(full.path)
    manifest.finished_at = "2000-01-01T00:00:00+00:00"
    manifest.write(full.path)  # a valid manifest, but not the one the child was made from
    _refused(filled, incremental, target, "is not the backup it was made from")


def _truncate_consistently(backup: StoredBackup, keep: float) -> None:
    """Cut the (uncompressed) dump short and rewrite the manifest to match it: only the
    archive check can tell."""
    data = _data(backup)
    raw = data.read_bytes()
    data.write_bytes(raw[: int(len(raw) * keep)])
    manifest = backup.manifest
    stored = manifest.files[0]
    import hashlib

    stored.sha256 = hashlib.sha256(data.read_bytes()).hexdigest()
    stored.size = stored.raw_size = data.stat().st_size
    manifest.write(backup.path)


def test_truncated_archive_fails_verification(filled: Settings, server: Server) -> None:
    backup = create(filled, tools_runner(), BackupOptions(codec=Codec.parse("none"))).backup
    assert verify(filled, tools_runner(), backup, None).checks
    _truncate_consistently(backup, 0.9)  # the table of contents is intact; data is cut
    with pytest.raises(BackupError):
        verify(filled, tools_runner(), open_backup(backup.path), None)


def _backup_argv(*extra: str) -> list[str]:
    return [sys.executable, "-m", "dbtasks", "backup", "--compression", "bz2", *extra]


@pytest.mark.parametrize("engine", ["postgresql"])
def test_sigkill_never_leaves_a_finished_looking_backup(
    settings: Settings, cli: Cli, project: Path
) -> None:
    from dbtasks import database

    database.init(settings)
    fill(settings.url, rows=1200)  # ~20 MB with large text: bz2 takes seconds
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "DBTASKS_"))},
        "DATABASE_URL": settings.url.render_as_string(hide_password=False),
    }
    killed = 0
    for delay in (0.3, 0.8, 1.5, 2.5, 4.0):
        proc = subprocess.Popen(_backup_argv(), cwd=project, env=env)
        time.sleep(delay)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            killed += 1
        proc.wait()
        folder = project / "backups"
        for entry in folder.iterdir() if folder.exists() else []:
            if entry.name.startswith("."):
                assert entry.name.endswith(".partial"), entry
                continue
            # Anything that looks finished must be finished: a checked manifest and data.
            backup = open_backup(entry)
            verify(settings, tools_runner(), backup, None)
    assert killed >= 2
    listing = cli("backups", "--format", "json", url=settings.url)
    assert listing.code == 0, listing.stderr
    assert all(
        not Path(p).name.startswith(".") or p for p in json.loads(listing.stdout)["unfinished"]
    )


@pytest.mark.parametrize("engine", ["mysql"])
def test_password_never_in_argv_logs_or_manifest(filled: Settings, cli: Cli, project: Path) -> None:
    password = filled.url.password
    assert password
    seen: list[str] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            for proc in Path("/proc").iterdir():
                if proc.name.isdigit():
                    with contextlib.suppress(OSError):
                        seen.append((proc / "cmdline").read_bytes().decode(errors="replace"))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        backup = cli("backup", "--verbose", "--verify", url=filled.url)
        mutate(filled.url)
        incremental = cli("backup", "--type", "incremental", "--verbose", url=filled.url)
        path = json.loads(cli("backups", "--format", "json", url=filled.url).stdout)["backups"][-1][
            "path"
        ]
        restored = cli(
            "restore", path, "--target-db", f"{filled.database}_pw", "--verbose", url=filled.url
        )
    finally:
        stop.set()
        sampler.join()
    for result in (backup, incremental, restored):
        assert result.code == 0, result.stderr
        assert password not in result.output
    assert any("mariadb-dump" in c or "mysqldump" in c for c in seen)
    assert not [c for c in seen if password in c]
    for file in (project / "backups").rglob("*"):
        if file.is_file():
            assert password.encode() not in file.read_bytes(), file
    manifest = next((project / "backups").rglob("manifest.json")).read_text()
    assert str(filled.url.username) not in manifest


@pytest.mark.parametrize("engine", ["mysql"])
def test_wrong_password_is_one_clear_line(filled: Settings, cli: Cli, project: Path) -> None:
    wrong = filled.url.set(password="not-the-password")
    result = cli("backup", url=wrong)
    line = assert_failure(result, 1, "cannot connect")
    assert "not-the-password" not in result.output
    assert not (project / "backups").exists()
    assert line


@pytest.mark.parametrize("engine", ["postgresql", "mysql"])  # SQLite needs no external tool
def test_missing_tool_fails_before_any_file(
    filled: Settings, server: Server, cli: Cli, project: Path
) -> None:
    result = cli("backup", url=filled.url, env={"PATH": "/nonexistent"})
    assert_failure(result, 1, "not found", "install")
    assert not (project / "backups").exists()


def test_restore_refuses_a_non_empty_target(
    filled: Settings, server: Server, cli: Cli, target: str
) -> None:
    made = cli("backup", "--compression", "zstd", url=filled.url)
    assert made.code == 0, made.stderr
    path = made.stdout.split(": ", 1)[1].split(" (")[0]
    mutate(filled.url)
    refused = cli("restore", path, "--target-db", target, url=filled.url)
    assert_failure(refused, 4, "--yes")
    cleaned = cli("restore", path, "--target-db", target, "--clean", url=filled.url)
    assert cleaned.code == 0, cleaned.stderr
    assert "counts match the manifest" in cleaned.stdout
    assert "select: " in cleaned.stdout


def test_backup_verify_and_listing_through_the_cli(
    filled: Settings, server: Server, cli: Cli
) -> None:
    made = cli("backup", "--verify", "--format", "json", url=filled.url)
    assert made.code == 0, made.stderr
    body = json.loads(made.stdout)
    assert body["verified"]["checks"]
    listed = cli("backups", "--format", "json", url=filled.url)
    rows = json.loads(listed.stdout)["backups"]
    assert [r["id"] for r in rows] == [body["id"]]
    assert rows[0]["type"] == "full"
    assert rows[0]["encrypted"] is False
    checked = cli("verify-backup", body["backup"], "--restore", url=filled.url)
    assert checked.code == 0, checked.stderr
    assert "restored into a scratch database" in checked.stdout
    engine = create_engine(filled.url, poolclass=NullPool)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT 1")).scalar() == 1
    engine.dispose()
