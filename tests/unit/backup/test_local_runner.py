"""The local runner: argv lists, checked exit codes, streams both ways, 0600 secret files."""

from __future__ import annotations

import stat
import sys
from pathlib import Path

import pytest

from dbtasks.errors import CommandError
from dbtasks.runners.base import Runner
from dbtasks.runners.local import LocalRunner

PY = sys.executable


@pytest.fixture
def runner() -> LocalRunner:
    return LocalRunner()


def test_is_a_runner(runner: LocalRunner) -> None:
    assert isinstance(runner, Runner)
    assert runner.which("sh") is not None
    assert runner.which("no-such-tool-dbtasks") is None


def test_run_captures_and_adds_env(runner: LocalRunner) -> None:
    done = runner.run(
        [PY, "-c", "import os,sys; sys.stdout.write(os.environ['X'] + sys.stdin.read())"],
        env={"X": "a"},
        input=b"b",
    )
    assert (done.exit_code, done.text) == (0, "ab")


def test_run_failure_quotes_last_stderr_line(runner: LocalRunner) -> None:
    code = "import sys; sys.stderr.write('first\\nthe reason\\n\\n'); sys.exit(3)"
    with pytest.raises(CommandError, match=r"failed \(exit 3\): the reason$"):
        runner.run([PY, "-c", code])
    assert runner.run([PY, "-c", code], check=False).exit_code == 3


def test_missing_tool_is_a_command_error(runner: LocalRunner) -> None:
    with pytest.raises(CommandError, match="cannot run no-such-tool-dbtasks"):
        runner.run(["no-such-tool-dbtasks"])


def test_reading_streams_and_checks(runner: LocalRunner) -> None:
    code = "import sys; sys.stdout.buffer.write(b'x' * 3_000_000); sys.stderr.write('e' * 200000)"
    with runner.reading([PY, "-c", code]) as stream:
        total = 0
        while chunk := stream.read(65536):
            total += len(chunk)
    assert total == 3_000_000
    with (
        pytest.raises(CommandError, match=r"exit 2\): boom"),
        runner.reading([PY, "-c", "import sys; print('boom', file=sys.stderr); sys.exit(2)"]) as s,
    ):
        s.read()


def test_reading_kills_the_command_when_the_block_fails(runner: LocalRunner) -> None:
    with (
        pytest.raises(ZeroDivisionError),
        runner.reading([PY, "-c", "import time; time.sleep(30)"]),
    ):
        _ = 1 / 0


def test_writing_feeds_stdin(runner: LocalRunner, tmp_path: Path) -> None:
    out = tmp_path / "out"
    code = f"import sys; open({str(out)!r}, 'wb').write(sys.stdin.buffer.read())"
    with runner.writing([PY, "-c", code]) as stream:
        for _ in range(10):
            stream.write(b"y" * 1_000_000)
    assert out.stat().st_size == 10_000_000


def test_writing_to_a_dead_command_raises_its_error(runner: LocalRunner) -> None:
    code = "import sys; print('no thanks', file=sys.stderr); sys.exit(4)"

    def feed() -> None:
        with runner.writing([PY, "-c", code]) as stream:
            for _ in range(100):
                stream.write(b"z" * 1_000_000)

    with pytest.raises(CommandError, match=r"exit 4\): no thanks"):
        feed()


def test_secret_file_is_private_and_removed(runner: LocalRunner) -> None:
    with runner.secret_file(b"s3cret") as name:
        path = Path(name)
        assert path.read_bytes() == b"s3cret"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert not path.exists()
