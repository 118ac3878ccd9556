"""What the user sees when the compose runner cannot do its job: one line, the right exit code.

Engine not reachable, project or service not found, service stopped, and a command failing
inside the container (its last stderr line and exit code reach the user).
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tests.conftest import Cli, assert_failure
from tests.docker.conftest import AppDatabase
from tests.docker.project import ComposeProject

pytestmark = pytest.mark.docker


@pytest.fixture
def closed_socket(tmp_path: Path) -> str:
    """A UNIX socket nobody listens on: connecting is refused."""
    path = tmp_path / "docker.sock"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(path))
    return f"unix://{path}"


@pytest.mark.parametrize("task", ["status", "backup"])
def test_engine_not_reachable(cli: Cli, closed_socket: str, task: str) -> None:
    result = cli(task, "--runner", "compose", env={"DOCKER_HOST": closed_socket})
    assert_failure(
        result,
        1,
        f"cannot reach the Docker engine at {closed_socket} (connection refused)",
        "point DOCKER_HOST at it",
    )


def test_project_not_found(cli: Cli, compose_project: ComposeProject) -> None:
    missing = compose_project.name + "-missing"
    result = cli("status", "--runner", "compose", env={"COMPOSE_PROJECT_NAME": missing})
    assert_failure(
        result,
        1,
        f"compose project '{missing}' not found",
        f"-p {missing} up -d`",
        "COMPOSE_PROJECT_NAME",
    )


@pytest.mark.parametrize(
    ("task", "variable"),
    [("status", "DBTASKS_COMPOSE_APP_SERVICE"), ("backup", "DBTASKS_COMPOSE_DB_SERVICE")],
)
def test_service_not_found(
    cli: Cli, compose_project: ComposeProject, task: str, variable: str
) -> None:
    env = {**compose_project.cli_env, variable: "nosuch"}
    result = cli(task, "--runner", "compose", env=env)
    assert_failure(
        result,
        1,
        f"compose project '{compose_project.name}' has no service 'nosuch'",
        "(services: app, mysql, postgres)",
    )


def test_service_stopped(cli: Cli, compose_project: ComposeProject) -> None:
    compose_project.compose("stop", "-t", "1", "app")
    try:
        result = cli("status", "--runner", "compose", env=compose_project.cli_env)
    finally:
        compose_project.compose("start", "app")
    assert_failure(
        result,
        1,
        f"service 'app' of compose project '{compose_project.name}' is not running (exited)",
        f"-p {compose_project.name} up -d app`",
    )


@pytest.mark.parametrize("app_server", ["postgresql"], indirect=True)
def test_command_failing_in_the_container(
    cli: Cli, compose_project: ComposeProject, app_db: AppDatabase
) -> None:
    result = cli("upgrade", "--revision=nosuch", "--runner", "compose", env=compose_project.cli_env)
    line = assert_failure(result, 1, "unknown revision 'nosuch'")
    assert result.stderr.rstrip("\n").splitlines()[-1] == line  # the container's last line
    # Other exit codes come through as they are: a refusal is 4, a drift 3.
    assert cli("init", "--runner", "compose", env=compose_project.cli_env).code == 0
    refused = cli("recreate", "--runner", "compose", env=compose_project.cli_env)
    assert_failure(refused, 4, "refused without --yes")
    assert cli("downgrade", "--yes", "--runner", "compose", env=compose_project.cli_env).code == 0
    drift = cli("status", "--check", "--runner", "compose", env=compose_project.cli_env)
    assert_failure(drift, 3, "1 migration(s) pending")
    as_json = cli(
        "upgrade", "--revision=nosuch", "--format=json", "--runner", "compose",
        env=compose_project.cli_env,
    )  # fmt: skip
    assert as_json.code == 1
    assert '"exit_code": 1' in as_json.stdout
    assert '"runner": "compose"' in as_json.stdout
