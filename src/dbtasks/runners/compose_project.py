"""A compose project on the Docker engine: its services' containers, found by their labels.

Compose v1 and v2 both label every container with ``com.docker.compose.project`` and
``com.docker.compose.service``, so that is how containers are found, never by name. The
Docker SDK (the ``docker`` package, extra ``dbtasks[docker]``) is imported here, lazily, so
``inv --list`` never loads it. Engine failures become one-line :class:`CommandError`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dbtasks.errors import CommandError, ConfigError

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"
_ONEOFF_LABEL = "com.docker.compose.oneoff"  # `compose run` containers: never the service's
_NUMBER_LABEL = "com.docker.compose.container-number"
_VERSION_LABEL = "com.docker.compose.version"
#: Hosts meaning "this machine" in a URL (published ports listen there).
LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1", "0.0.0.0", "::", ""})  # noqa: S104  # compared, never bound


def sdk() -> Any:
    """The ``docker`` package, or a clear error saying how to install it."""
    try:
        import docker
    except ImportError as exc:
        raise ConfigError(
            "the compose runner needs the Docker SDK: pip install 'dbtasks[docker]'"
        ) from exc
    return docker


def _engine_address(docker: Any) -> str:
    try:
        base = docker.utils.kwargs_from_env().get("base_url")
    except Exception:  # noqa: BLE001  # only for the message: a malformed DOCKER_HOST
        base = None
    return str(base or "unix:///var/run/docker.sock")


def engine_error(docker: Any, exc: BaseException) -> CommandError:
    """The one line for an engine that does not answer (the SDK's text is a nested repr)."""
    from dbtasks.settings import mask_password

    text = str(exc)
    reasons = {
        "Connection refused": "connection refused",
        "No such file or directory": "no such socket",
        "Permission denied": "permission denied",
        "timed out": "timed out",
        "Invalid bind address": "malformed DOCKER_HOST",
    }
    reason = next((why for key, why in reasons.items() if key in text), "no answer")
    address = mask_password(_engine_address(docker))
    return CommandError(
        f"cannot reach the Docker engine at {address} ({reason}): "
        "start it, or point DOCKER_HOST at it"
    )


@contextmanager
def api_errors(what: str) -> Iterator[None]:
    """Engine API failures as one-line :class:`CommandError` (the SDK raises its own types,
    and requests' or urllib3's when the engine goes away)."""
    docker = sdk()
    try:
        yield
    except docker.errors.APIError as exc:
        detail = str(getattr(exc, "explanation", "") or exc).splitlines()[0]
        raise CommandError(f"{what}: {detail}") from exc
    except (docker.errors.DockerException, OSError) as exc:
        raise engine_error(docker, exc) from exc
    except Exception as exc:
        if type(exc).__module__.startswith(("requests", "urllib3")):
            raise engine_error(docker, exc) from exc
        raise


@dataclass(frozen=True)
class Service:
    """The running container of a compose service."""

    project: str
    name: str
    container_id: str
    #: (port on this machine, port in the container) pairs it publishes, TCP.
    ports: tuple[tuple[int, int], ...]
    environment: Mapping[str, str]

    def __str__(self) -> str:
        return f"service {self.name!r} of compose project {self.project!r}"


class Project:
    """A compose project on the Docker engine."""

    def __init__(self, name: str, client: Any) -> None:
        self.name = name
        self.api = client.api

    @classmethod
    def connect(cls, name: str) -> Project:
        """The engine the environment names (``DOCKER_HOST``, ...), checked to answer."""
        docker = sdk()
        try:
            client = docker.from_env()
            client.api.ping()
        except Exception as exc:  # the SDK raises requests', urllib3's and its own types
            raise engine_error(docker, exc) from exc
        return cls(name, client)

    def _containers(self, service: str | None = None) -> list[dict[str, Any]]:
        labels = [f"{PROJECT_LABEL}={self.name}"]
        if service is not None:
            labels.append(f"{SERVICE_LABEL}={service}")
        with api_errors("cannot list containers"):
            found: list[dict[str, Any]] = self.api.containers(all=True, filters={"label": labels})
        return [c for c in found if _labels(c).get(_ONEOFF_LABEL) != "True"]

    def _start_command(self, containers: list[dict[str, Any]], service: str = "") -> str:
        """The command that starts the project (or one service), in the CLI that made it."""
        v1 = any(_labels(c).get(_VERSION_LABEL, "").startswith("1.") for c in containers)
        cli = "docker-compose" if v1 else "docker compose"
        return f"`{cli} -p {self.name} up -d{' ' + service if service else ''}`"

    def service(self, name: str) -> Service:
        """The service's running container (the first, when it is scaled)."""
        mine = self._containers(name)
        if not mine:
            everything = self._containers()
            if not everything:
                raise CommandError(
                    f"compose project {self.name!r} not found (no container labelled "
                    f"{PROJECT_LABEL}={self.name}): start it with {self._start_command([])} "
                    "or set COMPOSE_PROJECT_NAME"
                )
            names = sorted({_labels(c).get(SERVICE_LABEL, "?") for c in everything})
            raise CommandError(
                f"compose project {self.name!r} has no service {name!r} "
                f"(services: {', '.join(names)})"
            )
        running = [c for c in mine if c.get("State") == "running"]
        if not running:
            state = str(mine[0].get("State") or "stopped")
            raise CommandError(
                f"service {name!r} of compose project {self.name!r} is not running ({state}): "
                f"start it with {self._start_command(mine, name)}"
            )
        chosen = min(running, key=lambda c: int(_labels(c).get(_NUMBER_LABEL) or 1))
        with api_errors(f"cannot inspect the container of service {name!r}"):
            attrs = self.api.inspect_container(chosen["Id"])
        env = (attrs.get("Config") or {}).get("Env") or []
        return Service(
            self.name,
            name,
            str(chosen["Id"]),
            _published(chosen),
            dict(item.partition("=")[::2] for item in env),
        )

    def bindings(self) -> dict[str, tuple[tuple[int, int], ...]]:
        """Every running service's published TCP ports: service -> (here, container) pairs."""
        found: dict[str, tuple[tuple[int, int], ...]] = {}
        for c in self._containers():
            if c.get("State") == "running":
                name = _labels(c).get(SERVICE_LABEL, "")
                found[name] = found.get(name, ()) + _published(c)
        return found

    def to_network(self, url: URL) -> URL:
        """A URL as this machine sees it -> as the compose network sees it.

        ``127.0.0.1:<published port>`` becomes ``<service>:<container port>``; any other
        host is kept (a server both sides reach).
        """
        if (url.host or "") not in LOOPBACK or url.port is None:
            return url
        for service, ports in self.bindings().items():
            for here, inside in ports:
                if here == url.port:
                    return url.set(host=service, port=inside)
        return url

    def to_host(self, url: URL) -> URL:
        """A URL as the compose network sees it -> as this machine sees it (published port)."""
        service = url.host or ""
        ports = self.bindings().get(service)
        if ports is None:
            return url  # not one of the project's services: a server both sides reach
        for here, inside in ports:
            if url.port in (None, inside):
                return url.set(host="127.0.0.1", port=here)
        raise ConfigError(
            f"service {service!r} publishes no port {url.port or ''} on this machine, and this "
            "task connects to the database from here: publish it under `ports:` in the "
            "compose file"
        )


def _labels(container: Mapping[str, Any]) -> dict[str, str]:
    return dict(container.get("Labels") or {})


def _published(container: Mapping[str, Any]) -> tuple[tuple[int, int], ...]:
    pairs = {
        (int(p["PublicPort"]), int(p["PrivatePort"]))
        for p in container.get("Ports") or []
        if p.get("Type") == "tcp" and p.get("PublicPort")
    }
    return tuple(sorted(pairs))
