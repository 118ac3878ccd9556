"""Expected failures end in one clear line and a documented exit code, never a traceback."""

from __future__ import annotations

import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import URL

from dbtasks import migrations
from dbtasks.errors import ConnectError
from dbtasks.settings import Settings
from tests.conftest import Cli, Server, _cli_environ, assert_failure

PORTS = {"postgresql": 5432, "mysql": 3306}


def _closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A loopback port that accepts connections and then never says a word."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield int(listener.getsockname()[1])
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    listener.close()


def _server_url(engine: str, host: str, port: int) -> URL:
    return URL.create(engine, username="app", password="pw-never-shown", host=host, port=port,
                      database="app")  # fmt: skip


# --------------------------------------------------------------------------- URLs and drivers


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("not a url", "malformed database URL (no backend:// at its start)"),
        ("postgresql://app:pw-never-shown@db:port/app", "malformed database URL 'postgresql://...'"),
        ("postgresql://app:pw-never-shown", "malformed database URL 'postgresql://...'"),
        ("nosuchdb://app:pw-never-shown@db/app", "unknown database driver 'nosuchdb'"),
        ("postgresql+nodriver://app:pw-never-shown@db/app",
         "unknown database driver 'postgresql+nodriver'"),
        ("mysql://app:pw-never-shown@db/", "names no database"),
        ("sqlite://", "SQLite needs a database file"),
        ("sqlite:///:memory:", "SQLite needs a database file"),
    ],
)  # fmt: skip
def test_bad_urls_are_usage_errors(cli: Cli, raw: str, message: str) -> None:
    done = cli("status", env={"DATABASE_URL": raw})
    assert_failure(done, 2, message)
    assert "pw-never-shown" not in done.output


def test_a_bad_url_in_json(cli: Cli) -> None:
    import json

    done = cli("init", "--format", "json", "--url", "mysql://x:y@h:nan/db")
    assert done.code == 2
    error = json.loads(done.stdout)["error"]
    assert error == {
        "type": "ConfigError",
        "message": error["message"],
        "exit_code": 2,
    }
    assert error["message"].startswith("malformed database URL")


# --------------------------------------------------------------------------- unreachable


@pytest.mark.parametrize("engine", ["postgresql", "mysql"])
def test_nothing_listening(engine: str, cli: Cli) -> None:
    url = _server_url(engine, "127.0.0.1", _closed_port())
    done = cli("init", url=url)
    line = assert_failure(done, 1, "cannot connect to", "app:***@127.0.0.1")
    assert "refused" in line.lower()
    assert "pw-never-shown" not in done.output


@pytest.mark.parametrize("engine", ["postgresql", "mysql"])
def test_a_server_that_never_answers_times_out(engine: str, silent_server: int, cli: Cli) -> None:
    url = _server_url(engine, "127.0.0.1", silent_server)
    started = time.monotonic()
    done = cli("status", url=url, env={"DBTASKS_CONNECT_TIMEOUT": "2"})
    elapsed = time.monotonic() - started
    assert_failure(done, 1, "cannot connect to")
    assert elapsed < 8, f"took {elapsed:.1f} s with a 2 s connect timeout"


@pytest.mark.parametrize("engine", ["postgresql", "mysql"])
def test_a_non_routable_address_times_out(engine: str, cli: Cli) -> None:
    """TEST-NET-3 (RFC 5737) is never a real host: the connect must end within the timeout."""
    url = _server_url(engine, "203.0.113.1", PORTS[engine])
    started = time.monotonic()
    done = cli("status", url=url, env={"DBTASKS_CONNECT_TIMEOUT": "2"})
    elapsed = time.monotonic() - started
    assert_failure(done, 1, "cannot connect to", "app:***@203.0.113.1")
    assert elapsed < 8, f"took {elapsed:.1f} s with a 2 s connect timeout"


@pytest.mark.parametrize("engine", ["mysql"])
def test_a_wrong_password(db_url: URL, cli: Cli) -> None:
    wrong = db_url.set(password="wrong-Pa55word")
    done = cli("init", url=wrong)
    line = assert_failure(done, 1, "cannot connect to", "Access denied for user")
    assert "wrong-Pa55word" not in done.output
    assert db_url.password is not None
    assert db_url.password not in done.output
    assert ":***@" in line


@pytest.mark.parametrize("engine", ["mysql"])
def test_a_wrong_password_from_the_library(settings: Settings) -> None:
    wrong = settings.with_url(settings.url.set(password="wrong-Pa55word"))
    with pytest.raises(ConnectError) as caught:
        migrations.status(wrong)
    assert "wrong-Pa55word" not in str(caught.value)
    assert "Access denied" in str(caught.value)


# --------------------------------------------------------------------------- the project


def test_missing_migrations_folder(initialised: Settings, project: Path, cli: Cli) -> None:
    shutil.rmtree(project / "alembic" / "versions")
    for task in ("status", "upgrade", "verify"):
        done = cli(task, url=initialised.url)
        assert_failure(done, 2, "migrations folder", "does not exist")
    shutil.rmtree(project / "alembic")
    assert_failure(cli("history", url=initialised.url), 2, "migrations folder not found")
    (project / "alembic.ini").unlink()
    assert_failure(cli("init", url=initialised.url), 2, "no Alembic configuration at")


def test_unknown_revisions(initialised: Settings, cli: Cli) -> None:
    for args in (
        ("upgrade", "--sql", "-r", "nope"),
        ("downgrade", "--revision", "nope", "--yes"),
        ("migrate", "--target-version", "nope", "--dry-run"),
    ):
        assert_failure(cli(*args, url=initialised.url), 1, "unknown revision 'nope'")


def test_below_base(initialised: Settings, cli: Cli) -> None:
    done = cli("downgrade", "-s", "5", "--yes", url=initialised.url)
    assert_failure(done, 1, "cannot downgrade 5 step(s)", "3 revision(s) above base")
    done = cli("migrate", "--rollback", "--yes", "--force", url=initialised.url)
    assert done.code == 0


@pytest.mark.parametrize(
    "args",
    [("status", "--no-such-flag"), ("--no-such-core-flag",), ("downgrade", "--steps")],
)
def test_bad_flags_are_usage_errors(cli: Cli, args: tuple[str, ...]) -> None:
    done = cli(*args)
    assert done.code == 2, done.output
    assert done.stderr.startswith("dbtasks: ")
    assert len(done.stderr.splitlines()) == 1, done.stderr
    assert "Traceback" not in done.output


# --------------------------------------------------------------------------- Ctrl-C


def test_ctrl_c_exits_130(initialised: Settings, project: Path) -> None:
    """Interrupted at the confirmation prompt: one line, exit 130, nothing dropped."""
    import pty

    controller, terminal = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "dbtasks", "delete-db"],
        cwd=project,
        env=_cli_environ(initialised.url, None),
        stdin=terminal,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert proc.stderr is not None
        seen = b""
        deadline = time.monotonic() + 60
        while b"[y/N]" not in seen and time.monotonic() < deadline:
            ready, _, _ = select.select([proc.stderr], [], [], 1)
            if ready:
                seen += os.read(proc.stderr.fileno(), 4096)
        assert b"[y/N]" in seen, seen
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        os.close(terminal)
        os.close(controller)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    stderr = (seen + err).decode()
    assert proc.returncode == 130, stderr
    assert "dbtasks delete-db: interrupted" in stderr
    assert "Traceback" not in stderr
    assert out == b""
    assert migrations.status(initialised).exists


@pytest.mark.parametrize("engine", ["postgresql", "mysql"])
def test_a_database_without_rights(server: Server, settings: Settings, cli: Cli) -> None:
    """The server refuses the statement: one line, exit 1, the driver's reason."""
    assert server.admin_url is not None
    name = f"{settings.database}_ro"
    if server.engine == "postgresql":
        # With a password, so the test holds on servers that check them (not only on trust).
        server.admin_execute(f"CREATE ROLE \"{name}\" LOGIN PASSWORD 'ro-Pa55'")
        url = server.admin_url.set(username=name, password="ro-Pa55", database=settings.database)
    else:
        server.admin_execute(f"CREATE USER '{name}'@'%' IDENTIFIED BY 'ro-Pa55'")
        server.admin_execute(f"CREATE USER '{name}'@'localhost' IDENTIFIED BY 'ro-Pa55'")
        url = server.admin_url.set(username=name, password="ro-Pa55", database=settings.database)
    try:
        done = cli("init", url=url)
        assert done.code == 1, done.output
        assert "Traceback" not in done.output
        assert "denied" in done.stderr.lower()
        assert "ro-Pa55" not in done.output
    finally:
        if server.engine == "postgresql":
            server.admin_execute(f'DROP ROLE IF EXISTS "{name}"')
        else:
            server.admin_execute(f"DROP USER IF EXISTS '{name}'@'%'")
            server.admin_execute(f"DROP USER IF EXISTS '{name}'@'localhost'")
