"""Throwaway database servers in containers, for ``nox -s db_matrix``.

A pytest plugin (``-p tests.containers``): with ``--db-image IMAGE --db-engine ENGINE`` it
starts the image through the Docker SDK before the session, waits until the server answers a
real query (a bounded poll), points the suite at it (``DBTASKS_TEST_<ENGINE>_URL``), runs only
that engine's variants of the parametrised tests, and removes the container at the end, also
on failure or Ctrl-C. A small reaper process removes it too if pytest itself is killed.

The images only need the official images' contract: ``POSTGRES_PASSWORD`` for postgres,
``MYSQL_ROOT_PASSWORD``/``MARIADB_ROOT_PASSWORD`` for mysql and mariadb.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

LABEL = "dbtasks.matrix"
#: The compose service name each engine's container is labelled with (see ``start``).
SERVICES = {"postgresql": "postgres", "mysql": "mysql"}
PORTS = {"postgresql": 5432, "mysql": 3306}
URL_VARS = {"postgresql": "DBTASKS_TEST_POSTGRES_URL", "mysql": "DBTASKS_TEST_MYSQL_URL"}
READY_TIMEOUT = 120.0


@dataclass
class Started:
    project: str
    service: str
    container: Any
    url: str
    seconds: float
    version: str


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("dbtasks containers")
    group.addoption("--db-image", help="start this database image for the session")
    group.addoption("--db-engine", choices=sorted(PORTS), help="the image's engine")


def _environment(engine: str, password: str) -> dict[str, str]:
    if engine == "postgresql":
        return {"POSTGRES_PASSWORD": password}
    return {"MYSQL_ROOT_PASSWORD": password, "MARIADB_ROOT_PASSWORD": password}


def _url(engine: str, password: str, port: int) -> str:
    if engine == "postgresql":
        return f"postgresql://postgres:{password}@127.0.0.1:{port}/postgres"
    return f"mysql://root:{password}@127.0.0.1:{port}/mysql"


def _query_version(url: str) -> str:
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    from dbtasks.settings import parse_url

    engine = create_engine(
        parse_url(url, project_dir=Path.cwd()),
        poolclass=NullPool,
        connect_args={"connect_timeout": 3},
    )
    try:
        with engine.connect() as conn:
            return str(conn.execute(text("SELECT VERSION()")).scalar())
    finally:
        engine.dispose()


def wait_ready(container: Any, url: str, timeout: float = READY_TIMEOUT) -> str:
    """Poll a real query until it works; on timeout, fail with the container's last output."""
    from sqlalchemy.exc import DBAPIError

    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        container.reload()
        if container.status == "exited":
            logs = container.logs(tail=30).decode(errors="replace")
            raise RuntimeError(f"container {container.name} exited during start-up:\n{logs}")
        try:
            return _query_version(url)
        except DBAPIError as exc:  # the transient kind: refused, starting up, auth not ready
            last = exc
        time.sleep(0.5)
    logs = container.logs(tail=30).decode(errors="replace")
    raise TimeoutError(f"server not ready after {timeout:.0f} s (last error: {last}):\n{logs}")


def start(image: str, engine: str) -> Started:
    import docker

    client = docker.from_env()
    password = "pw-" + secrets.token_urlsafe(12)
    project = f"dbtasks-matrix-{os.getpid()}"
    began = time.monotonic()
    container = client.containers.run(
        image,
        detach=True,
        environment=_environment(engine, password),
        ports={f"{PORTS[engine]}/tcp": ("127.0.0.1", None)},
        # Also labelled as a one-service compose project, so dbtasks' compose runner can run
        # the server's own dump tools in it (this machine's may be older than the server).
        labels={
            LABEL: str(os.getpid()),
            "com.docker.compose.project": project,
            "com.docker.compose.service": SERVICES[engine],
        },
        tmpfs={"/var/lib/postgresql/data": "", "/var/lib/mysql": ""},
    )
    try:
        _spawn_reaper(container.id)
        container.reload()
        port = int(container.ports[f"{PORTS[engine]}/tcp"][0]["HostPort"])
        url = _url(engine, password, port)
        version = wait_ready(container, url)
    except BaseException:
        container.remove(force=True)
        raise
    return Started(project, SERVICES[engine], container, url, time.monotonic() - began, version)


def _spawn_reaper(container_id: str) -> None:
    """A detached process that removes the container once this process is gone (even -9).

    ``reap`` forks and its first process exits at once, so nothing is left for this process
    to wait for, and the reaper lives on in a session of its own.
    """
    subprocess.run(  # our own interpreter and module
        [sys.executable, "-m", "tests.containers", "reap", str(os.getpid()), container_id],
        start_new_session=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=Path.cwd(),
        check=True,
    )


def reap(pid: int, container_id: str) -> None:
    import docker
    from docker.errors import NotFound

    client = docker.from_env()
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        try:
            client.containers.get(container_id)
        except NotFound:
            return
        time.sleep(1)
    with contextlib.suppress(NotFound):
        client.containers.get(container_id).remove(force=True)


def remove_stale() -> int:
    """Remove matrix containers whose pytest process is gone; returns how many."""
    import docker

    client = docker.from_env()
    removed = 0
    for container in client.containers.list(all=True, filters={"label": LABEL}):
        owner = int(container.labels.get(LABEL, "0") or 0)
        try:
            os.kill(owner, 0)
        except (ProcessLookupError, ValueError):
            container.remove(force=True)
            removed += 1
    return removed


_started: Started | None = None


def pytest_configure(config: pytest.Config) -> None:
    global _started  # noqa: PLW0603  # one container per pytest session
    image = config.getoption("--db-image")
    engine = config.getoption("--db-engine")
    if not image or hasattr(config, "workerinput"):
        return  # pytest-xdist workers inherit the controller's server through the environment
    if not engine:
        raise pytest.UsageError("--db-image needs --db-engine")
    _started = start(image, engine)
    os.environ[URL_VARS[engine]] = _started.url
    os.environ["DBTASKS_TEST_COMPOSE_PROJECT"] = _started.project
    os.environ["DBTASKS_TEST_COMPOSE_SERVICE"] = _started.service
    os.environ["DBTASKS_TEST_TOOLS_CONTAINER"] = _started.container.id
    for other, var in URL_VARS.items():
        if other != engine:
            os.environ.pop(var, None)


def pytest_unconfigure(config: pytest.Config) -> None:
    global _started  # noqa: PLW0603
    if _started is not None:
        _started.container.remove(force=True)
        _started = None


def pytest_report_header(config: pytest.Config) -> list[str]:
    if _started is None:
        return []
    image = config.getoption("--db-image")
    return [f"container: {image} ready in {_started.seconds:.1f} s, server {_started.version}"]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Keep only the tests that run on the chosen engine.

    Tests that do not take the ``engine`` parameter never touch a server (the ``tests``
    session runs them once); the other engines' variants need servers this session lacks.
    """
    engine = config.getoption("--db-engine")
    if not config.getoption("--db-image") or not engine:
        return
    keep: list[pytest.Item] = []
    drop: list[pytest.Item] = []
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        (keep if params.get("engine") == engine else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.containers")
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("reap")
    r.add_argument("pid", type=int)
    r.add_argument("container")
    sub.add_parser("clean", help="remove matrix containers left by killed sessions")
    args = parser.parse_args()
    if args.command == "reap":
        if os.fork() > 0:
            os._exit(0)  # the caller's child ends here; the reaper goes on detached
        reap(args.pid, args.container)
    else:
        print(f"removed {remove_stale()} stale container(s)")


if __name__ == "__main__":
    main()
