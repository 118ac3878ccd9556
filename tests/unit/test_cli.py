"""The console script's program: version, usage errors exit 2, ./invoke.yaml is read."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dbtasks import __version__
from dbtasks.cli import DbtasksProgram
from dbtasks.tasks import ns


def _program() -> DbtasksProgram:
    return DbtasksProgram(namespace=ns, version=__version__, name="dbtasks", binary="dbtasks")


def _exit_code(argv: list[str]) -> int:
    with pytest.raises(SystemExit) as caught:
        _program().run(argv)
    return int(caught.value.code or 0)


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert _exit_code(["dbtasks", "--version"]) == 0
    assert __version__ in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["dbtasks", "status", "--bogus"], "dbtasks: No idea what '--bogus' is!"),
        (["dbtasks", "--bogus"], "dbtasks: No idea what '--bogus' is!"),
        (["dbtasks", "bogus"], "dbtasks: No idea what 'bogus' is!"),
        (["dbtasks", "create-migration", "-m"], "dbtasks: Flag <Argument: message (m)> needed"),
    ],
)
def test_usage_errors_exit_2(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert _exit_code(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(message)
    assert len(err.splitlines()) == 1


def test_help_works_twice_in_one_process(capsys: pytest.CaptureFixture[str]) -> None:
    for _ in range(2):
        assert _exit_code(["dbtasks", "--help", "downgrade"]) == 0
        assert "how many revisions to revert (default 1)" in capsys.readouterr().out


def test_invoke_yaml_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "invoke.yaml").write_text(
        "db:\n  url: sqlite:///from_yaml.db\n  format: json\n", encoding="utf-8"
    )
    for name in ("DATABASE_URL", "INVOKE_DB_URL", "DBTASKS_FORMAT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    _program().run(["dbtasks", "status"], exit=False)  # no alembic.ini here: fails, says where
    payload = json.loads(capsys.readouterr().out)
    assert payload["url"] == f"sqlite:///{tmp_path / 'from_yaml.db'}"
    assert payload["error"]["message"].startswith("no Alembic configuration at")


def test_stdout_closed_early_is_not_a_traceback(tmp_path: Path) -> None:
    """``dbtasks history --format json | head -c1``: exit 141 as for SIGPIPE, nothing on stderr."""
    import os
    import subprocess
    import sys

    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before dbtasks writes a byte
    try:
        done = subprocess.run(
            [sys.executable, "-m", "dbtasks", "history", "--format", "json"],
            cwd=Path(__file__).resolve().parents[2],
            stdout=write_end,
            stderr=subprocess.PIPE,
            env={**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'none.db'}"},
            text=True,
            check=False,
            timeout=60,
        )
    finally:
        os.close(write_end)
    assert done.returncode == 141
    assert "Traceback" not in done.stderr
    assert "BrokenPipe" not in done.stderr
