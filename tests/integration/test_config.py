"""Where the database URL and its password come from, through the real console script.

Precedence, highest first: --url > Invoke config db.url (INVOKE_DB_URL over ./invoke.yaml) >
DATABASE_URL (the process environment over ./.env) > sqlite:///var/app.db.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from sqlalchemy.engine import URL

from tests.conftest import Cli, CliResult, Server, _cli_environ, assert_failure


def _shown_url(result: CliResult) -> str:
    """The URL a task reported (failures report it too)."""
    assert "Traceback" not in result.stderr, result.stderr
    return str(json.loads(result.stdout)["url"])


def _sqlite(project: Path, name: str) -> str:
    return f"sqlite:///{project / 'var' / name}"


def _write_yaml(project: Path, body: str) -> None:
    (project / "invoke.yaml").write_text(textwrap.dedent(body), encoding="utf-8")


def test_default_is_the_sqlite_file_under_var(project: Path, cli: Cli) -> None:
    assert _shown_url(cli("status", "--format", "json")) == _sqlite(project, "app.db")
    done = cli("init")
    assert done.code == 0, done.stderr
    assert (project / "var" / "app.db").is_file()


def test_each_source_overrides_the_next(project: Path, cli: Cli) -> None:
    status = ("status", "--format", "json")
    (project / ".env").write_text("DATABASE_URL=sqlite:///var/dotenv.db\n", encoding="utf-8")
    assert _shown_url(cli(*status)) == _sqlite(project, "dotenv.db")

    env = {"DATABASE_URL": "sqlite:///var/environ.db"}
    assert _shown_url(cli(*status, env=env)) == _sqlite(project, "environ.db")

    _write_yaml(project, "db:\n  url: sqlite:///var/yaml.db\n")
    assert _shown_url(cli(*status, env=env)) == _sqlite(project, "yaml.db")

    env["INVOKE_DB_URL"] = "sqlite:///var/invoke_env.db"
    assert _shown_url(cli(*status, env=env)) == _sqlite(project, "invoke_env.db")

    flagged = cli(*status, "--url", "sqlite:///var/flag.db", env=env)
    assert _shown_url(flagged) == _sqlite(project, "flag.db")
    short = cli(*status, "-u", "sqlite:///var/short.db", env=env)
    assert _shown_url(short) == _sqlite(project, "short.db")


def test_inv_reads_the_same_configuration(project: Path) -> None:
    """``inv db.*`` from a project's own tasks.py, with its invoke.yaml beside it."""
    (project / "tasks.py").write_text(
        "from invoke.collection import Collection\n"
        "from dbtasks.tasks import ns as db\n\n"
        "ns = Collection(db)\n",
        encoding="utf-8",
    )
    _write_yaml(project, "db:\n  url: sqlite:///var/inv.db\n  format: json\n")
    proc = subprocess.run(
        [sys.executable, "-m", "invoke", "db.init"],
        cwd=project,
        env=_cli_environ(None, {"DATABASE_URL": "sqlite:///var/ignored.db"}),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    payload = json.loads(proc.stdout)  # db.format from invoke.yaml
    assert payload["url"] == _sqlite(project, "inv.db")
    assert (project / "var" / "inv.db").is_file()


def test_other_settings_from_the_environment(project: Path, cli: Cli) -> None:
    as_json = cli("status", env={"DBTASKS_FORMAT": "json"})
    assert json.loads(as_json.stdout)["task"] == "status"
    bad_format = cli("status", "--format", "xml")
    assert_failure(bad_format, 2, "unknown output format 'xml'")
    bad_timeout = cli("status", env={"DBTASKS_CONNECT_TIMEOUT": "soon"})
    assert_failure(bad_timeout, 2, "connect_timeout must be a whole number")
    (project / "other.ini").write_text("[alembic]\n", encoding="utf-8")
    no_scripts = cli("status", env={"ALEMBIC_CONFIG": "other.ini"})
    assert_failure(no_scripts, 2, "migrations folder")


def test_relative_sqlite_paths_are_relative_to_the_project(project: Path, cli: Cli) -> None:
    elsewhere = project / "sub"
    elsewhere.mkdir()
    # The console script takes the working directory as the project folder (which has no
    # alembic.ini here: status fails, and reports the URL it used)...
    shown = _shown_url(cli("status", "--format", "json", "--url", "sqlite:///x.db", cwd=elsewhere))
    assert shown == f"sqlite:///{elsewhere / 'x.db'}"
    # ... unless db.project_dir says otherwise (what the repository's tasks.py does).
    _write_yaml(elsewhere, f"db:\n  project_dir: {project}\n")
    shown = _shown_url(cli("status", "--format", "json", "--url", "sqlite:///x.db", cwd=elsewhere))
    assert shown == f"sqlite:///{project / 'x.db'}"


# --------------------------------------------------------------------------- passwords


@pytest.mark.parametrize("engine", ["mysql"])
def test_password_from_a_file(server: Server, db_url: URL, project: Path, cli: Cli) -> None:
    password = db_url.password
    assert password
    secret = project / "db_password"
    secret.write_text(f"{password}\n", encoding="utf-8")  # a trailing newline, as editors save
    secret.chmod(0o600)
    bare = db_url._replace(password=None)  # URL.set(password=None) would keep it
    env = {"DATABASE_PASSWORD_FILE": str(secret)}

    without = cli("status", url=bare)
    assert_failure(without, 1, "cannot connect", "Access denied")

    done = cli("init", "--format", "json", url=bare, env=env)
    assert done.code == 0, done.stderr
    payload = json.loads(done.stdout)
    assert payload["created"] is True
    assert payload["url"] == db_url.render_as_string(hide_password=True)
    assert password not in done.stdout + done.stderr

    _write_yaml(project, f"db:\n  password_file: {secret}\n")
    from_yaml = cli("status", "--check", url=bare)
    assert from_yaml.code == 0, from_yaml.stderr

    # db.password_file in invoke.yaml outranks DATABASE_PASSWORD_FILE.
    assert cli("status", url=bare, env={"DATABASE_PASSWORD_FILE": "nope"}).code == 0
    (project / "invoke.yaml").unlink()
    missing = cli("status", url=bare, env={"DATABASE_PASSWORD_FILE": str(project / "nope")})
    assert_failure(missing, 2, "cannot read password file", "No such file or directory")


@pytest.mark.parametrize("engine", ["mysql"])
def test_every_shown_url_is_masked(db_url: URL, cli: Cli) -> None:
    password = db_url.password
    assert password
    masked = db_url.render_as_string(hide_password=True)
    assert "***" in masked
    done = cli("init", "--format", "json", url=db_url)
    assert json.loads(done.stdout)["url"] == masked
    refused = cli("delete-db", url=db_url)  # the question names the URL
    assert_failure(refused, 4, masked)
    for result in (done, refused):
        assert password not in result.output
