"""Sessions: tests, lint, typecheck, db_matrix, docker, bench.

    nox -s lint typecheck tests db_matrix docker     # everything CI runs
    nox -s "db_matrix(postgres-17)" -- -x -k backup  # one server; arguments go to pytest

``db_matrix`` starts each database image as a throwaway container (Docker SDK). Its servers
come from ``DBTASKS_MATRIX`` ("id=image ...", ids like ``postgres-17`` or ``mariadb-11.8``;
default: the official images) plus ``DBTASKS_MATRIX_EXTERNAL`` ("postgres=URL mysql=URL") for
servers a CI system provides.
"""

from __future__ import annotations

import os
from pathlib import Path

import nox

nox.options.default_venv_backend = "uv|virtualenv"
nox.options.sessions = ["lint", "typecheck", "tests"]
nox.options.error_on_missing_interpreters = True

PYTHON = "3.11"
# Every test has its own database, so tests run in parallel (pytest-xdist, one worker per
# core); `-- -n 0` after the session name runs them one by one.
PARALLEL = ("-n", "auto")
DEFAULT_MATRIX = (
    "postgres-13=postgres:13 postgres-14=postgres:14 postgres-15=postgres:15 "
    "postgres-16=postgres:16 postgres-17=postgres:17 "
    "mysql-8.0=mysql:8.0 mysql-8.4=mysql:8.4 mariadb-10.11=mariadb:10.11 mariadb-11.4=mariadb:11.4"
)
ENGINES = {"postgres": "postgresql", "mysql": "mysql", "mariadb": "mysql"}
URL_VARS = {"postgresql": "DBTASKS_TEST_POSTGRES_URL", "mysql": "DBTASKS_TEST_MYSQL_URL"}


def _pairs(value: str) -> dict[str, str]:
    return dict(item.split("=", 1) for item in value.split() if "=" in item)


MATRIX = _pairs(os.environ.get("DBTASKS_MATRIX", DEFAULT_MATRIX))
EXTERNAL = {
    f"external-{k}": v for k, v in _pairs(os.environ.get("DBTASKS_MATRIX_EXTERNAL", "")).items()
}


def _engine(server_id: str) -> str:
    family = server_id.removeprefix("external-").split("-", 1)[0]
    if family not in ENGINES:
        raise ValueError(f"server id {server_id!r} must start with postgres, mysql or mariadb")
    return ENGINES[family]


def _install(session: nox.Session, extras: str = "all,test") -> None:
    session.install("-e", f".[{extras}]")


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """Unit tests, SQLite, and any servers given by DBTASKS_TEST_*_URL."""
    _install(session)
    session.run(
        "python", "-m", "pytest", "tests/unit", "tests/integration", *PARALLEL, *session.posargs
    )


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff (rules and formatting), and the GitHub workflow against its JSON schema."""
    session.install("ruff", "check-jsonschema")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run(
        "check-jsonschema",
        "--builtin-schema",
        "vendor.github-workflows",
        *map(str, sorted(Path(".github/workflows").glob("*.yml"))),
    )


@nox.session(python=PYTHON)
def typecheck(session: nox.Session) -> None:
    """mypy --strict over the package, tests, tasks, noxfile, alembic and benchmarks."""
    _install(session, "all,test,lint")
    session.run("mypy")


@nox.session(python=PYTHON, default=False)
@nox.parametrize("server", list(MATRIX) + list(EXTERNAL), ids=list(MATRIX) + list(EXTERNAL))
def db_matrix(session: nox.Session, server: str) -> None:
    """The integration suite against one containerised (or external) server."""
    _install(session)
    engine = _engine(server)
    args = ["python", "-m", "pytest", "tests/integration", f"--require-engines={engine}", *PARALLEL]
    env = dict.fromkeys(URL_VARS.values(), "")
    if server in EXTERNAL:
        env[URL_VARS[engine]] = EXTERNAL[server]
        args += ["-p", "tests.containers", f"--db-engine={engine}"]
    else:
        args += ["-p", "tests.containers", f"--db-image={MATRIX[server]}", f"--db-engine={engine}"]
    session.run(*args, *session.posargs, env=env)


@nox.session(python=PYTHON, default=False)
def docker(session: nox.Session) -> None:
    """The compose-runner suite against the real compose project (docker-compose.yml)."""
    _install(session)
    session.run(
        "python", "-m", "pytest", "tests/docker", "-p", "no:cacheprovider", *session.posargs
    )


@nox.session(python=PYTHON, default=False)
def bench(session: nox.Session) -> None:
    """Benchmarks: start-up, status against alembic, backups and restores."""
    _install(session)
    for script in sorted(Path("benchmarks").glob("bench_*.py")):
        session.run("python", str(script), *session.posargs)
