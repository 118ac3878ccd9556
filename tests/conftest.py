"""Shared fixtures: a fresh, uniquely named database per test on each engine.

Servers come from environment variables (any reachable server works):

    DBTASKS_TEST_POSTGRES_URL   e.g. postgresql://postgres@127.0.0.1:5432/postgres
    DBTASKS_TEST_MYSQL_URL      e.g. mysql://root@127.0.0.1:3306/mysql

An engine whose variable is unset is skipped with a reason, unless ``--require-engines`` names
it: then the missing server is an error. CI passes ``--require-engines=sqlite,postgresql,mysql``
so a server-backed test can never be skipped silently.

On MySQL/MariaDB the tests connect as a user with a password (created per session), so that
every test also checks that the password never leaks.

Helpers for the tests of the project's own models and migrations: ``change_models`` edits the
temporary project's ``env.py`` so that its models differ from the database, ``add_branch``
writes a second head, and ``cli`` / ``cli_tty`` run the real console script (the latter with a
terminal on stdin, to answer confirmation prompts).
"""

from __future__ import annotations

import locale
import os
import secrets
import subprocess
import sys
import tempfile
import textwrap
import uuid
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.pool import NullPool

from dbtasks.settings import Settings, load_settings
from tests.forkserver import ForkServer

REPO = Path(__file__).resolve().parent.parent
ENGINES = ("sqlite", "postgresql", "mysql")
ENV_VARS = {"postgresql": "DBTASKS_TEST_POSTGRES_URL", "mysql": "DBTASKS_TEST_MYSQL_URL"}
DRIVERS = {"postgresql": "postgresql+psycopg", "mysql": "mysql+pymysql"}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--require-engines",
        default=os.environ.get("DBTASKS_REQUIRE_ENGINES", ""),
        help="comma-separated engines whose server must be available (missing = error)",
    )


def _required(config: pytest.Config) -> set[str]:
    value = str(config.getoption("--require-engines") or "")
    return {e.strip() for e in value.split(",") if e.strip()}


def server_url(engine: str) -> URL | None:
    raw = os.environ.get(ENV_VARS[engine], "")
    if not raw:
        return None
    url = make_url(raw)
    return url.set(drivername=DRIVERS[engine])


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """With ``DBTASKS_FORBID_SKIPS=1`` (CI), a skipped test fails: a skip there hides a gap."""
    report = yield
    if os.environ.get("DBTASKS_FORBID_SKIPS") == "1" and report.skipped:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"skipped, and DBTASKS_FORBID_SKIPS=1 forbids skips: {reason}"
    return report


def pytest_report_header(config: pytest.Config) -> list[str]:
    lines = []
    for engine in ("postgresql", "mysql"):
        url = server_url(engine)
        if url is None:
            lines.append(f"{engine}: not configured ({ENV_VARS[engine]} unset)")
            continue
        try:
            eng = create_engine(url, poolclass=NullPool, connect_args={"connect_timeout": 5})
            with eng.connect() as conn:
                version = conn.execute(text("SELECT VERSION()")).scalar()
            eng.dispose()
            lines.append(f"{engine}: {url.render_as_string()} -> {version}")
        except Exception as exc:  # noqa: BLE001  # a header must never break the run
            lines.append(
                f"{engine}: {url.render_as_string()} unreachable: {exc.__class__.__name__}"
            )
    return lines


@dataclass
class Server:
    """An engine under test: how to reach it with admin rights and as the test user."""

    engine: str
    admin_url: URL | None  # None for SQLite
    user_url: URL | None

    def admin_execute(self, sql: str) -> None:
        assert self.admin_url is not None
        eng = create_engine(self.admin_url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
        with eng.connect() as conn:
            conn.execution_options(no_parameters=True).exec_driver_sql(sql)
        eng.dispose()

    def quote(self, name: str) -> str:
        """``name`` quoted for :meth:`admin_execute` (written here, not taken from dbtasks)."""
        q = '"' if self.engine == "postgresql" else "`"
        return q + name.replace(q, q + q) + q

    def database_names(self) -> set[str]:
        """The databases on the server, as the server itself lists them."""
        assert self.admin_url is not None
        query = (
            "SELECT datname FROM pg_database"
            if self.engine == "postgresql"
            else "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA"
        )
        eng = create_engine(self.admin_url, poolclass=NullPool)
        with eng.connect() as conn:
            names = {str(row[0]) for row in conn.execute(text(query))}
        eng.dispose()
        return names

    def drop_database(self, name: str) -> None:
        extra = " WITH (FORCE)" if self.engine == "postgresql" else ""
        self.admin_execute(f"DROP DATABASE IF EXISTS {self.quote(name)}{extra}")


def _mysql_user(admin: URL) -> Generator[URL, None, None]:
    """A MariaDB/MySQL user with a real password, for the whole session."""
    name = f"dbt_{uuid.uuid4().hex[:8]}"
    password = "pw-" + secrets.token_urlsafe(12)
    server = Server("mysql", admin, None)
    server.admin_execute(f"CREATE USER '{name}'@'%' IDENTIFIED BY '{password}'")
    server.admin_execute(f"CREATE USER '{name}'@'localhost' IDENTIFIED BY '{password}'")
    for host in ("%", "localhost"):
        server.admin_execute(f"GRANT ALL PRIVILEGES ON *.* TO '{name}'@'{host}'")
        server.admin_execute(f"GRANT PROCESS, RELOAD ON *.* TO '{name}'@'{host}'")
    try:
        yield admin.set(username=name, password=password)
    finally:
        server.admin_execute(f"DROP USER IF EXISTS '{name}'@'%'")
        server.admin_execute(f"DROP USER IF EXISTS '{name}'@'localhost'")


@pytest.fixture(scope="session")
def servers(request: pytest.FixtureRequest) -> Iterator[dict[str, Server]]:
    found: dict[str, Server] = {"sqlite": Server("sqlite", None, None)}
    pg = server_url("postgresql")
    if pg is not None:
        found["postgresql"] = Server("postgresql", pg, pg)
    my = server_url("mysql")
    if my is None:
        yield found
        return
    users = _mysql_user(my)
    found["mysql"] = Server("mysql", my, next(users))
    yield found
    users.close()


def _server(request: pytest.FixtureRequest, servers: dict[str, Server], engine: str) -> Server:
    if engine in servers:
        return servers[engine]
    reason = f"{engine} server not configured: set {ENV_VARS.get(engine, '')}"
    if engine in _required(request.config):
        pytest.fail(f"required engine missing: {reason}")
    pytest.skip(reason)


def _unique_name() -> str:
    return f"dbt_{uuid.uuid4().hex[:10]}"


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    """Parametrises a test over SQLite, PostgreSQL and MySQL/MariaDB."""
    return str(request.param)


@pytest.fixture
def server(request: pytest.FixtureRequest, servers: dict[str, Server], engine: str) -> Server:
    return _server(request, servers, engine)


@pytest.fixture
def db_url(server: Server, tmp_path: Path) -> Iterator[URL]:
    """URL of a database that does not exist yet; dropped after the test, whatever happened."""
    name = _unique_name()
    if server.engine == "sqlite":
        yield make_url(f"sqlite:///{tmp_path / 'db' / (name + '.db')}")
        return
    assert server.user_url is not None
    yield server.user_url.set(database=name)
    server.drop_database(name)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of the repository's Alembic set-up, so tests may write revisions into it."""
    import shutil

    dest = tmp_path / "project"
    dest.mkdir()
    shutil.copy(REPO / "alembic.ini", dest / "alembic.ini")
    shutil.copytree(
        REPO / "alembic", dest / "alembic", ignore=shutil.ignore_patterns("__pycache__")
    )
    return dest


@pytest.fixture
def settings(db_url: URL, project: Path) -> Settings:
    """Settings for the fresh database, as a task would resolve them (no environment)."""
    return load_settings(
        {},
        overrides={"url": db_url.render_as_string(hide_password=False)},
        environ={},
        project_dir=project,
    )


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str
    argv: list[str]

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


class Cli(Protocol):
    """The ``cli`` and ``cli_tty`` fixtures: run ``dbtasks ARGS`` in the test project."""

    def __call__(
        self,
        *args: str,
        url: URL | None = None,
        env: dict[str, str] | None = None,
        input_text: str | None = None,
        cwd: Path | None = None,
    ) -> CliResult: ...


#: Tasks whose dump and restore tools may run inside the server's container (db_matrix).
TOOL_TASKS = frozenset({"backup", "restore", "verify-backup"})


def _cli_environ(
    url: URL | None, env: dict[str, str] | None, args: tuple[str, ...] = ()
) -> dict[str, str]:
    """The test process's environment without dbtasks' own variables, plus the given ones.

    Under ``db_matrix`` (``DBTASKS_TEST_COMPOSE_PROJECT``), tasks that run dump tools use the
    compose runner, so the tools are the server's own version (see ``tests.containers``);
    a test that sets ``PATH`` itself is about the local tools and keeps the local runner.
    """
    environ = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DATABASE_", "INVOKE_", "DBTASKS_", "ALEMBIC_"))
    }
    if url is not None:
        environ["DATABASE_URL"] = url.render_as_string(hide_password=False)
    project = os.environ.get("DBTASKS_TEST_COMPOSE_PROJECT")
    if project and args and args[0] in TOOL_TASKS and "PATH" not in (env or {}):
        environ.update(DBTASKS_RUNNER="compose", COMPOSE_PROJECT_NAME=project)
    environ.update(env or {})
    return environ


@pytest.fixture(scope="session")
def forkserver() -> Iterator[ForkServer | None]:
    """One fork server per test process (see ``tests.forkserver``); off with ``=0``."""
    if os.environ.get("DBTASKS_TEST_FORKSERVER", "1") == "0":
        yield None
        return
    server = ForkServer(REPO)
    yield server
    server.close()


def _run_cli(
    forkserver: ForkServer | None,
    args: tuple[str, ...],
    *,
    url: URL | None,
    env: dict[str, str] | None,
    cwd: Path,
    stdin: int,
    script: Path | None = None,
) -> CliResult:
    """``python -m dbtasks ARGS`` (or ``python SCRIPT ARGS``) with ``stdin``.

    stdout and stderr are captured (not a terminal).
    """
    argv = [sys.executable, *(["-m", "dbtasks"] if script is None else [str(script)]), *args]
    environ = _cli_environ(url, env, args)
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        if forkserver is None:
            proc = subprocess.run(
                argv,
                cwd=cwd,
                env=environ,
                stdin=stdin,
                stdout=out,
                stderr=err,
                timeout=300,
                check=False,
            )
            code = proc.returncode
        else:
            stdio = (stdin, out.fileno(), err.fileno())
            code = forkserver.run(
                list(args), env=environ, cwd=cwd, stdio=stdio, timeout=300, script=script
            )
        texts = []
        for stream in (out, err):
            stream.seek(0)
            # As subprocess's text mode reads it: the locale's encoding, universal newlines.
            data = stream.read().decode(locale.getpreferredencoding(False))
            texts.append(data.replace("\r\n", "\n").replace("\r", "\n"))
    return CliResult(code, texts[0], texts[1], argv)


@pytest.fixture
def cli(project: Path, forkserver: ForkServer | None) -> Cli:
    """Run the real ``dbtasks`` console script in the test project; returns a CliResult.

    ``url`` travels as ``DATABASE_URL`` (never on the command line); stdin is ``input_text``
    or empty, never a terminal, so the process has no terminal to ask on.
    """

    def run(
        *args: str,
        url: URL | None = None,
        env: dict[str, str] | None = None,
        input_text: str | None = None,
        cwd: Path | None = None,
    ) -> CliResult:
        with tempfile.TemporaryFile() as stdin:
            stdin.write((input_text or "").encode())
            stdin.seek(0)
            return _run_cli(
                forkserver, args, url=url, env=env, cwd=cwd or project, stdin=stdin.fileno()
            )

    return run


@pytest.fixture
def cli_tty(project: Path, forkserver: ForkServer | None) -> Cli:
    """Like ``cli``, with a pseudo-terminal on stdin: ``input_text`` is what the user types.

    stdout and stderr stay captured, so the prompt (on stderr) can be read back.
    """
    import pty

    def run(
        *args: str,
        url: URL | None = None,
        env: dict[str, str] | None = None,
        input_text: str | None = None,
        cwd: Path | None = None,
    ) -> CliResult:
        controller, terminal = pty.openpty()
        try:
            # The terminal's line discipline holds the typed line until the prompt reads it.
            os.write(controller, (input_text or "").encode())
            return _run_cli(forkserver, args, url=url, env=env, cwd=cwd or project, stdin=terminal)
        finally:
            os.close(terminal)
            os.close(controller)

    return run


# --------------------------------------------------------------------------- project helpers

#: A revision that branches off the first one, so the scripts have two heads.
BRANCH_REVISION = "d4f6b8c00004"


@contextmanager
def other_session(url: URL) -> Iterator[None]:
    """Another client connected to the database while dbtasks runs."""
    engine = create_engine(url, poolclass=NullPool)
    conn = engine.connect()
    conn.execute(text("SELECT 1"))
    try:
        yield
    finally:
        # --terminate may have ended the session: invalidating closes the driver's connection
        # without a round trip to the server, which a dead connection would fail.
        conn.invalidate()
        conn.close()
        engine.dispose()


def change_models(project: Path, code: str) -> None:
    """Make the project's models differ from the migrations.

    ``code`` runs in the project's ``env.py`` on ``target_metadata``, a copy of the service's
    metadata (the service's own stays untouched, also for tests running in this process).
    """
    env_py = project / "alembic" / "env.py"
    source = env_py.read_text(encoding="utf-8")
    marker = "target_metadata = Base.metadata\n"
    assert marker in source, "env.py no longer sets target_metadata = Base.metadata"
    replacement = (
        "from sqlalchemy import MetaData as _MetaData\n"
        "target_metadata = _MetaData(naming_convention=Base.metadata.naming_convention)\n"
        "for _table in Base.metadata.tables.values():\n"
        "    _table.to_metadata(target_metadata)\n"
        "import sqlalchemy as sa\n" + textwrap.dedent(code).strip() + "\n"
    )
    env_py.write_text(source.replace(marker, replacement), encoding="utf-8")


def add_branch(project: Path, down_revision: str = "a1c3e5f70001") -> Path:
    """Write a revision branching off ``down_revision``: the scripts then have two heads."""
    path = project / "alembic" / "versions" / f"20261120_{BRANCH_REVISION}_branch.py"
    path.write_text(
        textwrap.dedent(
            f'''\
            """a branch beside the main line

            Revision ID: {BRANCH_REVISION}
            Revises: {down_revision}
            """

            import sqlalchemy as sa
            from alembic import op

            revision = "{BRANCH_REVISION}"
            down_revision = "{down_revision}"
            branch_labels = None
            depends_on = None


            def upgrade() -> None:
                op.create_table("branch_notes", sa.Column("id", sa.Integer(), primary_key=True))


            def downgrade() -> None:
                op.drop_table("branch_notes")
            '''
        ),
        encoding="utf-8",
    )
    return path


@pytest.fixture
def initialised(settings: Settings) -> Settings:
    """``settings`` of a database that ``db.init`` created and migrated to head."""
    from dbtasks import database

    database.init(settings)
    return settings


def assert_failure(result: CliResult, code: int, *fragments: str) -> str:
    """An expected failure: exit ``code``, no traceback, and the one ``dbtasks <task>: ...``
    line on stderr containing every fragment. Returns that line."""
    assert result.code == code, (result.code, result.stdout, result.stderr)
    assert "Traceback" not in result.output, result.output
    lines = [line for line in result.stderr.splitlines() if line.startswith("dbtasks ")]
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]
