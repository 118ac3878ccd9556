"""The README's "restore a backup by hand" commands, run as written: age, zstd/gunzip/bunzip2,
pg_restore, psql, mariadb, sqlite3. They must reproduce the database exactly."""

from __future__ import annotations

import os
import pty
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from sqlalchemy.engine import URL

from dbtasks.backup.codecs import Codec
from dbtasks.backup.create import BackupOptions, create
from dbtasks.backup.crypto import Keys
from dbtasks.settings import Settings
from tests.conftest import Server
from tests.integration.backup.conftest import content, mutate, tools_runner

CODEC = {"postgresql": "zstd", "mysql": "gzip", "sqlite": "bz2"}
UNDO = {"zstd": "zstd -dc", "gzip": "gunzip -c", "bz2": "bunzip2 -c"}

pytestmark = pytest.mark.skipif(
    not all(shutil.which(t) for t in ("age", "age-keygen", "zstd", "sqlite3")),
    reason="needs age, age-keygen, zstd and sqlite3 on PATH",
)


def _sh(script: str, cwd: Path, env: dict[str, str]) -> None:
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=cwd,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, (script, done.stdout, done.stderr)


def _client_env(server: Server) -> dict[str, str]:
    """How the standard clients reach the test server without any flag."""
    url = server.admin_url
    if url is None:
        return {}
    in_container = bool(os.environ.get("DBTASKS_TEST_TOOLS_CONTAINER"))
    if server.engine == "postgresql":
        env = {
            "PGHOST": "127.0.0.1" if in_container else url.host or "",
            "PGPORT": "5432" if in_container else str(url.port or 5432),
            "PGUSER": url.username or "",
        }
        if url.password:
            env["PGPASSWORD"] = url.password
        return env
    env = {
        "MYSQL_HOST": "127.0.0.1" if in_container else url.host or "",
        "MYSQL_TCP_PORT": "3306" if in_container else str(url.port or 3306),
        "USER": url.username or "",
    }
    if url.password:
        env["MYSQL_PWD"] = url.password
    return env


def _in_server(env: dict[str, str], command: str) -> str:
    """``command`` as run by hand: here, or (db_matrix) with ``docker exec`` in the server's
    container, whose client tools match its version. ``-e NAME`` passes a variable's value
    from this environment, so no password reaches an argv."""
    container = os.environ.get("DBTASKS_TEST_TOOLS_CONTAINER")
    if not container:
        return command
    names = " ".join(f"-e {name}" for name in sorted(env))
    return f"docker exec -i {names} {container} {command}"


def _restore_commands(engine: str, codec: str, data: str, target: str, env: dict[str, str]) -> str:
    undo = UNDO[codec]
    if engine == "postgresql":
        return (
            f"age -d -i key.txt {data} | {undo} > app.dump\n"
            f"{_in_server(env, f'createdb {target}')}\n"
            f"{_in_server(env, f'pg_restore --no-owner -d {target}')} < app.dump\n"
        )
    if engine == "mysql":
        return (
            f"age -d -i key.txt {data} > plain\n"
            f"{_in_server(env, 'mariadb')} <<< 'CREATE DATABASE {target}'\n"
            f"{undo} plain | {_in_server(env, f'mariadb {target}')}\n"
        )
    return (
        f"age -d -i key.txt {data} | {undo} > {target}\nsqlite3 {target} 'PRAGMA integrity_check'\n"
    )


def _delta_commands(engine: str, codec: str, delta: str, target: str, env: dict[str, str]) -> str:
    undo = UNDO[codec]
    client = {
        "postgresql": _in_server(env, f"psql -X -v ON_ERROR_STOP=1 -d {target}"),
        "mysql": _in_server(env, f"mariadb {target}"),
        "sqlite": f"sqlite3 {target}",
    }[engine]
    return f"age -d -i key.txt {delta} > delta.plain\n{undo} delta.plain | {client}\n"


def _target_url(settings: Settings, server: Server, target: str, folder: Path) -> URL:
    if server.engine == "sqlite":
        return settings.url.set(database=str(folder / target))
    return settings.url.set(database=target)


def test_restore_full_and_incremental_by_hand(
    filled: Settings, server: Server, tmp_path: Path
) -> None:
    keyfile = tmp_path / "key.txt"
    subprocess.run(["age-keygen", "-o", str(keyfile)], check=True, capture_output=True)
    public = next(
        line.split(": ", 1)[1]
        for line in keyfile.read_text().splitlines()
        if line.startswith("# public key: ")
    )
    codec = CODEC[server.engine]
    keys = Keys([keyfile])
    options = {"codec": Codec.parse(codec), "recipients": (public,), "keys": keys}
    full = create(filled, tools_runner(), BackupOptions(**options)).backup  # type: ignore[arg-type]
    at_full = content(filled.url)
    mutate(filled.url)
    incremental = create(
        filled,
        tools_runner(),
        BackupOptions(type="incremental", **options),  # type: ignore[arg-type]
    ).backup
    at_incremental = content(filled.url)
    work = tmp_path / "by-hand"
    work.mkdir()
    shutil.copy(keyfile, work / "key.txt")
    env = _client_env(server)
    target = f"{filled.database}_hand"
    data = full.path / full.manifest.files[0].name
    delta = incremental.path / incremental.manifest.files[0].name
    try:
        _sh(_restore_commands(server.engine, codec, str(data), target, env), work, env)
        url = _target_url(filled, server, target, work)
        assert content(url) == at_full
        _sh(_delta_commands(server.engine, codec, str(delta), target, env), work, env)
        assert content(url) == at_incremental
    finally:
        if server.engine != "sqlite":
            server.drop_database(target)


def _tty_run(argv: list[str], answer: str, cwd: Path) -> int:
    """Run ``argv`` on a pseudo-terminal, typing ``answer`` when it asks."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: exec age, its /dev/tty is the pty
        os.chdir(cwd)
        os.execvp(argv[0], argv)  # noqa: S606  # argv list, test-controlled
    output = b""
    deadline = time.monotonic() + 60
    answered = False
    while time.monotonic() < deadline:
        try:
            chunk = os.read(fd, 1024)
        except OSError:
            break
        if not chunk:
            break
        output += chunk
        if not answered and b"passphrase" in output.lower():
            os.write(fd, answer.encode() + b"\r")
            answered = True
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return os.waitstatus_to_exitcode(status)


@pytest.mark.parametrize("engine", ["sqlite"])
def test_passphrase_backup_opens_with_the_age_cli(
    filled: Settings, server: Server, tmp_path: Path
) -> None:
    backup = create(
        filled, tools_runner(), BackupOptions(codec=Codec.parse("gzip"), passphrase="open sesame")
    ).backup
    work = tmp_path / "by-hand"
    work.mkdir()
    code = _tty_run(
        ["age", "-d", "-o", "key.txt", str(backup.path / "key.age")], "open sesame", work
    )
    assert code == 0
    assert (work / "key.txt").read_text().startswith("AGE-SECRET-KEY-")
    data = backup.path / backup.manifest.files[0].name
    _sh(
        f"age -d -i key.txt {data} | gunzip -c > app.db\nsqlite3 app.db 'PRAGMA integrity_check'\n",
        work,
        {},
    )
    assert content(filled.url.set(database=str(work / "app.db"))) == content(filled.url)
