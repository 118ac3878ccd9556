"""A throwaway compose project of ``docker-compose.yml``, for the compose suite and benchmark.

Bringing it up and down is ``.ci/compose-up`` and ``.ci/compose-down`` (the one
implementation: engine check, local stand-in images, wheels for the app image, secrets, a
bounded wait for health); this module only chooses what they are given: a project name and
ports of its own (a developer's running project is never touched), and the images.

Images: ``POSTGRES_IMAGE``, ``MYSQL_IMAGE``, ``PYTHON_IMAGE`` (or ``DBTASKS_PYTHON_IMAGE``)
from the environment; else the local stand-ins where ``.ci/images/build`` made them (no
registry here); else the official ``postgres:16``, ``mariadb:11.4`` and ``python:X.Y-slim``
(X.Y: this Python, whose pip builds the app image's wheels). MariaDB rather than MySQL by
default: the client tools the local-runner side of a comparison uses are MariaDB's.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PY_VERSION = "{}.{}".format(*sys.version_info[:2])
#: The app container's DATABASE_URL / DATABASE_PASSWORD_FILE for each server.
APP_DATABASE = {
    "postgresql": ("postgresql+psycopg://app@postgres:5432/app", "/run/secrets/postgres_password"),
    "mysql": ("mysql+pymysql://app@mysql:3306/app", "/run/secrets/mysql_password"),
}
#: Long enough for a first run on a fresh machine (images from Debian packages, wheels).
UP_TIMEOUT = 900


class ProjectError(Exception):
    """The project could not be brought up (the message holds the scripts' last output)."""


def engine_problem() -> str | None:
    """None when a Docker engine answers, else why not."""
    if shutil.which("docker") is None:
        return "the docker CLI is not installed"
    done = subprocess.run(["docker", "info"], capture_output=True, text=True, check=False)
    return None if done.returncode == 0 else "the Docker engine does not answer (docker info)"


def _image_exists(image: str) -> bool:
    done = subprocess.run(["docker", "image", "inspect", image], capture_output=True, check=False)
    return done.returncode == 0


def images() -> dict[str, str]:
    """POSTGRES_IMAGE, MYSQL_IMAGE and PYTHON_IMAGE, chosen as the module says."""
    python = os.environ.get("PYTHON_IMAGE") or os.environ.get("DBTASKS_PYTHON_IMAGE")
    wanted = {
        "POSTGRES_IMAGE": (os.environ.get("POSTGRES_IMAGE"), "dbtasks/postgres:15", "postgres:16"),
        "MYSQL_IMAGE": (os.environ.get("MYSQL_IMAGE"), "dbtasks/mariadb:10.11", "mariadb:11.4"),
        "PYTHON_IMAGE": (python, f"dbtasks/python:{PY_VERSION}", f"python:{PY_VERSION}-slim"),
    }
    return {
        key: given or (stand_in if _image_exists(stand_in) else official)
        for key, (given, stand_in, official) in wanted.items()
    }


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _python_with_pip() -> str:
    """An interpreter of this Python version that has pip (a venv made by uv has none)."""
    base = getattr(sys, "_base_executable", "")
    for candidate in (sys.executable, base, shutil.which(f"python{PY_VERSION}")):
        if not candidate:
            continue
        check = subprocess.run(
            [candidate, "-c", "import sys, pip; print('{}.{}'.format(*sys.version_info[:2]))"],
            capture_output=True,
            text=True,
            check=False,
        )
        if check.returncode == 0 and check.stdout.strip() == PY_VERSION:
            return candidate
    raise ProjectError(f"no Python {PY_VERSION} with pip to build the app image's wheels with")


@dataclass
class ComposeProject:
    """A running project: its name, the variables it was started with, its secrets."""

    name: str
    env: dict[str, str]
    ports: dict[str, int]
    passwords: dict[str, str]
    app_engine: str = "postgresql"

    @classmethod
    def up(cls) -> ComposeProject:
        """Start a new project (``.ci/compose-up``); :meth:`down` it even when this fails."""
        env = {
            "COMPOSE_PROJECT_NAME": f"dbtasks-test-{uuid.uuid4().hex[:8]}",
            "POSTGRES_PORT": str(_free_port()),
            "MYSQL_PORT": str(_free_port()),
            **images(),
            "APP_DATABASE_URL": APP_DATABASE["postgresql"][0],
            "APP_DATABASE_PASSWORD_FILE": APP_DATABASE["postgresql"][1],
        }
        project = cls(
            env["COMPOSE_PROJECT_NAME"],
            env,
            {"postgresql": int(env["POSTGRES_PORT"]), "mysql": int(env["MYSQL_PORT"])},
            {},
        )
        env["PYTHON"] = _python_with_pip()
        done = subprocess.run(
            [str(REPO / ".ci" / "compose-up")],
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            check=False,
            timeout=UP_TIMEOUT,
        )
        if done.returncode != 0:
            project.down()
            output = (done.stdout + done.stderr).strip().splitlines()
            raise ProjectError("compose-up failed:\n" + "\n".join(output[-40:]))
        project.passwords = {
            f.stem: f.read_text(encoding="utf-8").strip()
            for f in (REPO / "secrets").glob("*_password.txt")
        }
        return project

    def down(self) -> None:
        """Remove the project, volumes included (``.ci/compose-down``)."""
        subprocess.run(
            [str(REPO / ".ci" / "compose-down")],
            env={**os.environ, **self.env},
            capture_output=True,
            check=False,
            timeout=300,
        )

    def compose(self, *args: str) -> None:
        """Run the project's Compose CLI (the one ``.ci/compose-lib.sh`` picks)."""
        done = subprocess.run(
            ["bash", "-c", '. .ci/compose-lib.sh && "${COMPOSE[@]}" "$@"', "compose", *args],
            cwd=REPO,
            env={**os.environ, **self.env},
            capture_output=True,
            text=True,
            check=False,
            timeout=300,
        )
        if done.returncode != 0:
            raise ProjectError(f"compose {' '.join(args)} failed: {done.stdout}{done.stderr}")

    def container(self, service: str) -> str:
        """The id of the service's running container."""
        done = subprocess.run(
            [
                "docker",
                "ps",
                "-q",
                "--filter",
                f"label=com.docker.compose.project={self.name}",
                "--filter",
                f"label=com.docker.compose.service={service}",
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        ids = done.stdout.split()
        if not ids:
            raise ProjectError(f"no running container for service {service}")
        return ids[0]

    def use_app_database(self, engine: str) -> None:
        """Recreate the app container pointing at ``engine``'s server (its DATABASE_URL)."""
        if engine == self.app_engine:
            return
        url, password_file = APP_DATABASE[engine]
        self.env.update(APP_DATABASE_URL=url, APP_DATABASE_PASSWORD_FILE=password_file)
        self.compose("up", "-d", "--no-deps", "--no-build", "app")
        self.app_engine = engine

    @property
    def cli_env(self) -> dict[str, str]:
        """What a ``dbtasks --runner compose`` run needs to find this project."""
        return {"COMPOSE_PROJECT_NAME": self.name}


def leftovers() -> set[str]:
    """Names of test projects a killed session left behind (containers or volumes)."""
    names: set[str] = set()
    label = '{{ index .Labels "com.docker.compose.project" }}'
    for kind in (["ps", "-a"], ["volume", "ls"]):
        done = subprocess.run(
            ["docker", *kind, "--filter", "label=com.docker.compose.project", "--format", label],
            capture_output=True,
            text=True,
            check=False,
        )
        names.update(n for n in done.stdout.split() if n.startswith("dbtasks-test-"))
    return names


if __name__ == "__main__":
    # python -m tests.docker.project clean: remove what killed sessions left behind.
    if sys.argv[1:] != ["clean"]:
        sys.exit("usage: python -m tests.docker.project clean")
    for name in sorted(leftovers()):
        print(f"removing compose project {name}")
        ComposeProject(name, {"COMPOSE_PROJECT_NAME": name}, {}, {}).down()
