"""The test suite's fork server must behave like ``python -m dbtasks`` in a fresh interpreter.

If it did not, every test using the ``cli`` fixture would be testing something else than what
a user runs; these compare the two directly.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.forkserver import ForkServer

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def server() -> Iterator[ForkServer]:
    fs = ForkServer(REPO)
    yield fs
    fs.close()


def _call(
    server: ForkServer | None, args: list[str], env: dict[str, str], cwd: Path, timeout: float = 60
) -> tuple[int, bytes, bytes]:
    """(exit status, stdout, stderr) of ``dbtasks ARGS``: forked, or fresh when no server."""
    with (
        Path(os.devnull).open("rb") as stdin,
        tempfile.TemporaryFile() as out,
        tempfile.TemporaryFile() as err,
    ):
        if server is None:
            code = subprocess.run(
                [sys.executable, "-m", "dbtasks", *args],
                env=env,
                cwd=cwd,
                stdin=stdin,
                stdout=out,
                stderr=err,
                check=False,
            ).returncode
        else:
            stdio = (stdin.fileno(), out.fileno(), err.fileno())
            code = server.run(args, env=env, cwd=cwd, stdio=stdio, timeout=timeout)
        out.seek(0)
        err.seek(0)
        return code, out.read(), err.read()


def _environ(**extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DBTASKS_", "INVOKE_"))}
    return {**base, **extra}


def _project(folder: Path) -> Path:
    folder.mkdir(exist_ok=True)
    for name in ("alembic.ini", "alembic"):
        (folder / name).symlink_to(REPO / name)
    return folder


@pytest.mark.parametrize(
    "args",
    [["--version"], ["--no-such-flag"], ["status", "--format", "json"], ["upgrade", "--sql"]],
    ids=["version", "usage-error", "status-json", "upgrade-sql"],
)
def test_same_exit_status_and_output_as_a_fresh_interpreter(
    server: ForkServer, tmp_path: Path, args: list[str]
) -> None:
    env = _environ(DATABASE_URL=f"sqlite:///{tmp_path / 'app.db'}")
    _project(tmp_path)
    assert _call(server, args, env, tmp_path) == _call(None, args, env, tmp_path)


def test_each_call_gets_its_own_environment_and_directory(
    server: ForkServer, tmp_path: Path
) -> None:
    """One call's environment and working directory never reach the next call."""
    first, second = _project(tmp_path / "first"), _project(tmp_path / "second")
    (first / "invoke.yaml").write_text("db:\n  format: json\n")  # this project wants JSON
    url = f"sqlite:///{tmp_path / 'none.db'}"
    code, out, _ = _call(server, ["history"], _environ(DATABASE_URL=url), first)
    assert code == 0
    assert out.lstrip().startswith(b"{")
    code, out, _ = _call(server, ["history"], _environ(DBTASKS_ENV="production"), second)
    assert code == 0
    assert not out.lstrip().startswith(b"{")  # text again: nothing kept from the first call
    assert "DBTASKS_ENV" not in os.environ  # and nothing reached the test process


def test_a_call_past_its_timeout_is_killed(server: ForkServer, tmp_path: Path) -> None:
    # A server that accepts the connection and never says a word: `status` waits on it.
    _project(tmp_path)
    with socket.create_server(("127.0.0.1", 0)) as silent:
        port = silent.getsockname()[1]
        env = _environ(DATABASE_URL=f"postgresql://u@127.0.0.1:{port}/db")
        with pytest.raises(subprocess.TimeoutExpired):
            _call(server, ["status"], env, tmp_path, timeout=2)
    # The server is still usable after a killed call.
    assert _call(server, ["--version"], env, tmp_path)[0] == 0
