"""The task layer without a server: flags, confirmation, errors to exit codes, start-up cost."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from invoke.config import Config
from invoke.context import Context
from invoke.exceptions import Exit
from sqlalchemy.exc import OperationalError

from dbtasks.errors import CommandError, RefusedError
from dbtasks.tasks import ns
from dbtasks.tasks.common import COMMON_DEFAULTS, SHORT_FLAGS, execute, make_confirm

REPO = Path(__file__).resolve().parents[2]

#: The issue-2 tasks and their own flags (the common ones come on top), short flag or None.
FLAGS: dict[str, dict[str, str | None]] = {
    "init": {"environment": None},
    "recreate": {"yes": "y", "force": None, "terminate": None},
    "delete-db": {"yes": "y", "force": None, "terminate": None},
    "create-migration": {"message": "m", "empty": None},
    "upgrade": {"revision": "r", "sql": None},
    "downgrade": {"steps": "s", "revision": "r", "sql": None, "yes": "y", "force": None},
    "migrate": {
        "target-version": None,
        "dry-run": None,
        "rollback": None,
        "force": None,
        "yes": "y",
    },
    "status": {"check": None},
    "history": {},
    "verify": {},
}
COMMON = {"url": "u", "format": None, "verbose": "v", "quiet": "q", "runner": None}


def _flags(task: str) -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for argument in ns[task].get_arguments():
        long, *short = argument.names
        found[long] = short[0] if short else None
    return found


@pytest.mark.parametrize("task", sorted(FLAGS))
def test_flags_and_short_flags(task: str) -> None:
    assert _flags(task) == {**FLAGS[task], **COMMON}


@pytest.mark.parametrize("task", sorted(ns.task_names))
def test_every_task_has_help_and_only_chosen_short_flags(task: str) -> None:
    body = ns[task]
    assert body.__doc__
    assert body.__doc__.strip().splitlines()[0].endswith(".")
    for argument in body.get_arguments():
        assert argument.help, f"{task} --{argument.name} has no help"
        long, *short = argument.names
        assert short in ([], [SHORT_FLAGS.get(long)]), (task, argument.names)
        if long in COMMON_DEFAULTS:
            assert short == ([COMMON[long]] if COMMON[long] else [])


def test_the_collection_is_named_db_and_dashes_names() -> None:
    assert ns.name == "db"
    assert set(FLAGS) <= set(ns.task_names)


def test_short_flags_parse(tmp_path: Path) -> None:
    """-s 2 -y -v -u URL reach the task as steps, yes, verbose and url."""
    from invoke.parser import Parser
    from invoke.parser.context import ParserContext

    arguments = ns["downgrade"].get_arguments()
    parser = Parser(contexts=[ParserContext(name="downgrade", args=arguments)])
    parsed = parser.parse_argv(["downgrade", "-s", "2", "-y", "-v", "-u", "sqlite:///x.db"])
    values = {name: arg.value for name, arg in parsed[0].args.items()}
    assert values["steps"] == "2"
    assert values["yes"] is True
    assert values["verbose"] is True
    assert values["url"] == "sqlite:///x.db"


# --------------------------------------------------------------------------- confirmation


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_yes_answers_without_asking(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    assert make_confirm(True)("Drop it?") is True


def test_no_terminal_means_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("y\n"))  # a pipe: never read
    with pytest.raises(RefusedError) as caught:
        make_confirm(False)("Drop database 'app'?")
    assert str(caught.value) == (
        "refused without --yes (no terminal to ask on): Drop database 'app'?"
    )


@pytest.mark.parametrize(
    ("typed", "answer"),
    [("y\n", True), ("YES\n", True), (" yes \n", True), ("n\n", False), ("\n", False), ("", False)],
)
def test_a_terminal_is_asked(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    typed: str,
    answer: bool,
) -> None:
    monkeypatch.setattr(sys, "stdin", _Terminal(typed))
    assert make_confirm(False)("Drop database 'app'?") is answer
    captured = capsys.readouterr()
    assert captured.err == "Drop database 'app'? [y/N] "
    assert captured.out == ""


# --------------------------------------------------------------------------- exit codes


def _run(tmp_path: Path, body: Any, **common: Any) -> int:
    context = Context(Config(overrides={"db": {"project_dir": str(tmp_path)}}))
    flags = {**COMMON_DEFAULTS, **common}
    try:
        execute(context, "thing", body, flags, {})
    except Exit as exit_:
        return int(exit_.code)
    return 0


def _raise(error: BaseException) -> Any:
    def body(_settings: Any) -> Any:
        raise error

    return body


@pytest.mark.parametrize(
    ("error", "code", "line"),
    [
        (RefusedError("refused: no"), 4, "dbtasks thing: refused: no"),
        (CommandError("it broke"), 1, "dbtasks thing: it broke"),
        (KeyboardInterrupt(), 130, "dbtasks thing: interrupted"),
        (ValueError("bad value"), 2, "dbtasks thing: bad value"),
        (
            OperationalError("SELECT 1", {}, Exception("server went away")),
            1,
            "dbtasks thing: server went away",
        ),
        (RuntimeError("a bug\nwith lines"), 1, "dbtasks thing: unexpected RuntimeError: a bug"),
    ],
)
def test_errors_become_one_line_and_an_exit_code(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    error: BaseException,
    code: int,
    line: str,
) -> None:
    assert _run(tmp_path, _raise(error)) == code
    captured = capsys.readouterr()
    assert captured.err == line + "\n"
    assert captured.out == ""


def test_an_unexpected_error_is_redacted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = "mysql://app:hunter2@db/app"
    body = _raise(RuntimeError("lost mysql://app:hunter2@db/app (hunter2)"))
    assert _run(tmp_path, body, url=url, format="json") == 1
    captured = capsys.readouterr()
    assert "hunter2" not in captured.out + captured.err
    assert "unexpected RuntimeError: lost mysql://app:***@db/app (***)" in captured.err


def test_a_configuration_error_before_settings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run(tmp_path, _raise(AssertionError("never called")), url="nope://") == 2
    assert capsys.readouterr().err.startswith("dbtasks thing: unknown database driver 'nope'")


# --------------------------------------------------------------------------- start-up


@pytest.mark.parametrize(
    "code",
    ["import tasks", "from dbtasks.cli import program; program.run(['dbtasks', '--list'])"],
    ids=["inv --list", "dbtasks --list"],
)
def test_listing_tasks_imports_no_heavy_modules(code: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    imported = {line.split("|")[-1].strip() for line in proc.stderr.splitlines()}
    heavy = {m for m in imported if m.split(".")[0] in ("sqlalchemy", "alembic", "docker", "rich")}
    assert heavy == set()
