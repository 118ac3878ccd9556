"""Round trips on every engine: each type x each codec, encrypted or not, with exclusions.

A restore must reproduce every test table's content exactly (per-table content hashes), and
report row counts that match the manifest.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from dbtasks.backup.codecs import CODECS, Codec
from dbtasks.backup.create import BackupOptions, BackupResult, create
from dbtasks.backup.crypto import Keys
from dbtasks.backup.restore import restore, target_url
from dbtasks.backup.verify import verify
from dbtasks.runners.base import Runner
from dbtasks.settings import Settings
from tests.conftest import Server
from tests.integration.backup.conftest import TEST_TABLES, content, mutate, short

TYPES = ("full", "schema", "incremental")


def _yes(question: str) -> bool:
    return True


def _target(settings: Settings, server: Server, name: str) -> str:
    """A target database name (SQLite: a file) that the test's cleanup drops."""
    if server.engine == "sqlite":
        return str(settings.project_dir / f"{name}.db")
    return f"{settings.database}_{name}"[:60]


@pytest.fixture
def targets(settings: Settings, server: Server) -> object:
    made: list[str] = []

    def make(name: str) -> str:
        target = _target(settings, server, name)
        made.append(target)
        return target

    yield make
    if server.engine != "sqlite":
        for name in made:
            server.drop_database(name)


def _take(
    settings: Settings, runner: Runner, backup_type: str, codec: str, **kw: object
) -> BackupResult:
    if backup_type == "incremental":
        create(settings, runner, BackupOptions(codec=Codec.parse(codec), **kw))  # type: ignore[arg-type]
        mutate(settings.url)
    return create(
        settings,
        runner,
        BackupOptions(type=backup_type, codec=Codec.parse(codec), **kw),  # type: ignore[arg-type]
    )


@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize("backup_type", TYPES)
def test_round_trip(
    filled: Settings,
    server: Server,
    runner: Runner,
    targets: object,
    backup_type: str,
    codec: str,
) -> None:
    result = _take(filled, runner, backup_type, codec)
    manifest = result.backup.manifest
    assert manifest.type == backup_type
    assert manifest.compression["codec"] == codec
    if backup_type == "incremental":
        assert manifest.parent is not None
        assert manifest.file("delta") is not None
    expected = content(filled.url)
    if backup_type != "schema":
        rows = short(manifest.rows())
        for table in TEST_TABLES:
            assert rows[table] == expected[table][0]
    target = targets(f"rt_{backup_type[:3]}_{codec[:2]}")  # type: ignore[operator]
    restored = restore(filled, runner, result.backup.path, target_db=target, confirm=_yes)
    url = target_url(filled, target)
    got = content(url)
    if backup_type == "schema":
        assert set(TEST_TABLES) <= set(got)
        assert all(got[t][0] == 0 for t in TEST_TABLES)
    else:
        assert got == expected
        reported = short({t: v["restored"] for t, v in restored.tables.items()})
        assert {t: reported[t] for t in TEST_TABLES} == {t: expected[t][0] for t in TEST_TABLES}
    assert verify(filled, runner, result.backup, None).checks


def test_incremental_chain_of_three_restores_each_point(
    filled: Settings, server: Server, runner: Runner, targets: object
) -> None:
    full = create(filled, runner, BackupOptions(codec=Codec.parse("zstd")))
    states = [content(filled.url)]
    links = [full]
    for seed in (1, 2):
        mutate(filled.url, seed=seed)
        states.append(content(filled.url))
        links.append(create(filled, runner, BackupOptions(type="incremental")))
    assert links[2].backup.manifest.parent == {
        "id": links[1].backup.id,
        "manifest_sha256": links[1].backup.manifest_sha256,
    }
    for i, link in enumerate(links):
        target = targets(f"chain{i}")  # type: ignore[operator]
        restore(filled, runner, link.backup.path, target_db=target, confirm=_yes)
        assert content(target_url(filled, target)) == states[i]


@pytest.mark.parametrize("backup_type", ["full", "incremental"])
def test_encrypted_to_a_recipient(
    filled: Settings,
    server: Server,
    runner: Runner,
    targets: object,
    backup_type: str,
    tmp_path: Path,
) -> None:
    import pyrage

    identity = pyrage.x25519.Identity.generate()
    key = tmp_path / "key.txt"
    key.write_text(str(identity) + "\n")
    keys = Keys([key])
    recipient = str(identity.to_public())
    result = _take(
        filled, runner, backup_type, "zstd", recipients=(recipient,), keys=keys, verify=True
    )
    manifest = result.backup.manifest
    assert manifest.encryption is not None
    assert manifest.encryption["recipients"][0].startswith("sha256:")
    text = (result.backup.path / "manifest.json").read_text()
    assert recipient not in text
    assert "AGE-SECRET-KEY" not in text
    assert result.verification is not None
    assert not result.verification.skipped
    payload = manifest.file("delta" if backup_type == "incremental" else "data")
    assert payload is not None
    assert payload.name.endswith(".zst.age")
    target = targets(f"enc_{backup_type[:3]}")  # type: ignore[operator]
    restore(filled, runner, result.backup.path, target_db=target, keys=keys, confirm=_yes)
    assert content(target_url(filled, target)) == content(filled.url)


@pytest.mark.parametrize("engine", ["sqlite"])
def test_encrypted_with_a_passphrase(filled: Settings, runner: Runner, targets: object) -> None:
    result = _take(filled, runner, "full", "gzip", passphrase="correct horse ü")
    manifest = result.backup.manifest
    assert manifest.encryption is not None
    assert manifest.encryption["passphrase"] is True
    assert (result.backup.path / "key.age").is_file()
    assert "correct horse" not in (result.backup.path / "manifest.json").read_text()
    target = targets("pass")  # type: ignore[operator]
    keys = Keys(passphrase="correct horse ü")
    restore(filled, runner, result.backup.path, target_db=target, keys=keys, confirm=_yes)
    assert content(target_url(filled, target)) == content(filled.url)


def test_exclusions(filled: Settings, server: Server, runner: Runner, targets: object) -> None:
    result = create(
        filled,
        runner,
        BackupOptions(
            codec=Codec.parse("gzip"), exclude_tables=("log_*",), exclude_data=("child_*",)
        ),
    )
    manifest = result.backup.manifest
    names = short(manifest.tables)
    assert "log_lines" not in names
    assert names["child_rows"] == {"rows": 0, "data_excluded": True}
    target = targets("excl")  # type: ignore[operator]
    restore(filled, runner, result.backup.path, target_db=target, confirm=_yes)
    before, after = content(filled.url), content(target_url(filled, target))
    assert "log_lines" not in after
    assert after["child_rows"][0] == 0
    assert after["select"] == before["select"]
    assert after["MixedCase"] == before["MixedCase"]
    # An incremental builds on a chain with the same exclusions.
    mutate(filled.url)
    options = BackupOptions(
        type="incremental", exclude_tables=("log_*",), exclude_data=("child_*",)
    )
    incremental = create(filled, runner, options)
    assert incremental.backup.manifest.type == "incremental"
    target = targets("excl_inc")  # type: ignore[operator]
    restore(filled, runner, incremental.backup.path, target_db=target, confirm=_yes)
    assert content(target_url(filled, target))["select"] == content(filled.url)["select"]


def test_incremental_after_a_migration_is_a_full_backup(
    filled: Settings, server: Server, runner: Runner
) -> None:
    from sqlalchemy import create_engine

    create(filled, runner, BackupOptions())
    engine = create_engine(filled.url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE added_later (id INTEGER PRIMARY KEY)")
    engine.dispose()
    result = create(filled, runner, BackupOptions(type="incremental"))
    assert result.backup.manifest.type == "full"
    assert result.promoted is not None
    assert "schema" in result.promoted


def test_first_incremental_without_a_parent_is_a_full_backup(
    filled: Settings, server: Server, runner: Runner
) -> None:
    result = create(filled, runner, BackupOptions(type="incremental"))
    assert result.backup.manifest.type == "full"
    assert result.promoted is not None
    assert "no earlier backup" in result.promoted
