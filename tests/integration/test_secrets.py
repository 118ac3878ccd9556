"""The MariaDB test user's password appears nowhere: not in any task's output with --verbose,
not in JSON, not in error messages, not in the argv of any process the console script starts.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from sqlalchemy.engine import URL

from tests.conftest import CliResult, _cli_environ, _run_cli, other_session
from tests.forkserver import ForkServer

MARIADB = pytest.mark.parametrize("engine", ["mysql"])  # the server with a real password

#: Runs the console script with every way of starting a process recorded (argv, one JSON line
#: each) in the file named by $SPY_LOG, so the test sees what dbtasks would have put in `ps`.
SPY = """\
import json, os, subprocess, sys

log = open(os.environ["SPY_LOG"], "a", encoding="utf-8")

def record(argv):
    log.write(json.dumps([str(a) for a in argv]) + "\\n")
    log.flush()

_popen_init = subprocess.Popen.__init__

def popen_init(self, args, *rest, **kw):
    record([args] if isinstance(args, (str, bytes)) else list(args))
    _popen_init(self, args, *rest, **kw)

subprocess.Popen.__init__ = popen_init
for name in ("execv", "execve", "execvp", "execvpe", "spawnv", "spawnve", "posix_spawn",
             "posix_spawnp"):
    original = getattr(os, name, None)
    if original is not None:
        def wrapped(*args, _original=original, _name=name):
            argv = args[2] if _name.startswith("spawn") else args[1]
            record(list(argv))
            return _original(*args)
        setattr(os, name, wrapped)
_system = os.system
def system(command):
    record([command])
    return _system(command)
os.system = system

if os.environ.get("SPY_SELFTEST"):
    subprocess.run(["true", "selftest"], check=True)
    os.spawnv(os.P_WAIT, "/bin/true", ["true", "spawned"])

from dbtasks.cli import main
sys.argv = ["dbtasks", *sys.argv[1:]]
main()
"""

TASKS: list[tuple[str, ...]] = [
    ("init",),
    ("init",),
    ("status", "--check"),
    ("history",),
    ("verify",),
    ("upgrade",),
    ("upgrade", "--sql"),
    ("downgrade", "--sql", "-s", "2"),
    ("downgrade", "--yes"),
    ("migrate", "--target-version", "head", "--dry-run"),
    ("migrate", "--target-version", "head"),
    ("migrate", "--target-version", "a1c3e5f70001", "--yes"),  # refused: data loss
    ("migrate", "--rollback", "--yes", "--force"),
    ("create-migration", "-m", "nothing to do"),  # refused: empty
    ("create-migration", "-m", "by hand", "--empty"),
    ("upgrade", "--revision", "nope"),  # unknown revision
    ("delete-db",),  # refused: no terminal
    ("recreate", "--yes"),
    ("delete-db", "--yes"),
    ("status",),  # the database is gone
]

EXPECTED = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4, 0, 1, 0, 1, 4, 0, 0, 0]
#: In text mode, only the tasks whose text differs most from their JSON: failures print their
#: detail lines, and a refused drop lists the sessions (JSON runs every task).
TEXT_TOO = {
    ("migrate", "--target-version", "a1c3e5f70001", "--yes"),
    ("create-migration", "-m", "nothing to do"),
    ("upgrade", "--revision", "nope"),
    ("delete-db",),
    ("status", "--check"),
    ("verify",),
}


def _run(
    project: Path,
    args: tuple[str, ...],
    env: dict[str, str],
    spy_log: Path,
    forkserver: ForkServer | None = None,
) -> CliResult:
    """``python spy_main.py ARGS``: forked from ``forkserver`` when given (same process tree)."""
    spy = project / "spy_main.py"
    if not spy.exists():
        spy.write_text(SPY, encoding="utf-8")
    with Path(os.devnull).open("rb") as stdin:
        return _run_cli(
            forkserver,
            args,
            url=None,
            env={**env, "SPY_LOG": str(spy_log)},
            cwd=project,
            stdin=stdin.fileno(),
            script=spy,
        )


def _assert_hidden(password: str, result: CliResult) -> None:
    assert password not in result.stdout, result.argv
    assert password not in result.stderr, result.argv
    assert password not in " ".join(result.argv)


def test_the_spy_sees_processes(
    project: Path, tmp_path: Path, forkserver: ForkServer | None
) -> None:
    spy_log = tmp_path / "argv.jsonl"
    env = _cli_environ(None, {"SPY_SELFTEST": "1"})
    assert _run(project, ("--version",), env, spy_log, forkserver).code == 0
    started = [json.loads(line) for line in spy_log.read_text(encoding="utf-8").splitlines()]
    assert ["true", "selftest"] in started
    assert ["true", "spawned"] in started


@MARIADB
@pytest.mark.parametrize("fmt", ["text", "json"])
def test_no_task_shows_the_password(
    db_url: URL, project: Path, tmp_path: Path, fmt: str, forkserver: ForkServer | None
) -> None:
    password = db_url.password
    assert password
    env = _cli_environ(db_url, None)
    spy_log = tmp_path / "argv.jsonl"
    codes = []
    for number, args in enumerate(TASKS):
        if fmt == "text" and args not in TEXT_TOO and number:
            codes.append(EXPECTED[number])
            continue
        done = _run(project, (*args, "--verbose", "--format", fmt), env, spy_log, forkserver)
        codes.append(done.code)
        _assert_hidden(password, done)
        assert "Traceback" not in done.output, (args, done.stderr)
        if fmt == "json":
            json.loads(done.stdout)  # exactly one object, also for failures
        if number == 0:
            # --verbose did show the SQL: the check above ran over real, detailed output.
            assert "CREATE TABLE" in done.stderr
    assert codes == EXPECTED, codes
    assert _run(project, ("init",), env, spy_log, forkserver).code == 0
    with other_session(db_url):
        # Sessions are listed (user, host) in the refusal and its JSON details.
        for args, code in ((("delete-db", "--yes"), 4), (("delete-db", "--yes", "--terminate"), 0)):
            done = _run(project, (*args, "--verbose", "--format", fmt), env, spy_log, forkserver)
            assert done.code == code, done.stderr
            _assert_hidden(password, done)
    # The issue-2 tasks start no process of their own; any that one did would be checked here.
    started = spy_log.read_text(encoding="utf-8").splitlines() if spy_log.exists() else []
    for line in started:
        assert password not in line, line
    assert started == []


@MARIADB
def test_a_wrong_password_is_not_shown(db_url: URL, project: Path, tmp_path: Path) -> None:
    wrong = db_url.set(password="Wr0ng-" + (db_url.password or ""))
    env = _cli_environ(wrong, None)
    for fmt in ("text", "json"):
        done = _run(project, ("status", "--verbose", "--format", fmt), env, tmp_path / "x")
        assert done.code == 1
        assert "Access denied" in done.stderr
        assert "Wr0ng-" not in done.output


@MARIADB
def test_password_on_the_command_line_is_masked_in_output(
    db_url: URL, project: Path, tmp_path: Path
) -> None:
    """--url is the user's own choice of argv; dbtasks still never echoes it."""
    password = db_url.password
    assert password
    env = _cli_environ(None, None)
    raw = db_url.render_as_string(hide_password=False)
    for args in (("init", "--verbose"), ("verify", "--format", "json", "-v")):
        done = _run(project, (*args, "--url", raw), env, tmp_path / "x")
        assert done.code == 0, done.stderr
        assert password not in done.output
