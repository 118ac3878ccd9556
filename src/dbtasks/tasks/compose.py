"""Tasks with ``--runner compose``: where each runs, and against which database.

Migration tasks (``db_task(compose="app")``, the default) run whole inside the app service's
container, where the service's code, Alembic environment and configuration are:
:func:`run_task` starts ``dbtasks <task> <flags> --runner local`` there and relays its output
as it comes, so text and JSON look as they do locally (JSON says ``"runner": "compose"``), and
its exit code becomes this process's. A confirmation the task would ask for is asked here,
where the terminal is, and the task then runs again with ``--yes``.

Backup tasks (``compose="host"``) run here, their dump and restore tools in the database
service's container (:class:`~dbtasks.runners.compose.ComposeRunner`);
:func:`host_settings` points them at the app service's database through its published port.

The database, in both cases: the URL configured here (``--url``, ``db.url``,
``DATABASE_URL``: as this machine reaches it, translated for the containers), else
``db.compose.url`` (as the compose network reaches it), else the app container's own
``DATABASE_URL`` and ``DATABASE_PASSWORD_FILE``.
"""

from __future__ import annotations

import codecs
import json
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, TYPE_CHECKING

from dbtasks.errors import CommandError, ConfigError, ExitCode, RefusedError
from dbtasks.runners.compose import ComposeRunner

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

    from dbtasks.settings import Settings

log = logging.getLogger("dbtasks.compose")

#: The line a task in the container prints when it would have asked (see make_confirm).
_REFUSAL = re.compile(rb"^dbtasks [\w-]+: refused without --yes \(no terminal to ask on\): (.*)$")


def _read_url(raw: str, where: str) -> URL:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(raw.strip())
    except (ArgumentError, ValueError) as exc:
        raise ConfigError(f"malformed database URL in {where}") from exc


def _app(settings: Settings) -> ComposeRunner:
    return ComposeRunner.for_service(settings.compose.project, settings.compose.app_service)


def _app_database(settings: Settings, app: ComposeRunner) -> URL:
    """The app service's database as the compose network sees it, with its password."""
    raw = settings.compose.url or app.service.environment.get("DATABASE_URL", "")
    if not raw:
        raise ConfigError(f"{app.service} sets no DATABASE_URL: set db.compose.url")
    url = _read_url(raw, "db.compose.url" if settings.compose.url else f"{app.service}")
    password_file = app.service.environment.get("DATABASE_PASSWORD_FILE", "")
    if url.password is None and password_file:
        password = app.read_file(password_file).decode("utf-8").rstrip("\r\n")
        url = url.set(password=password)
    return url


def host_settings(settings: Settings, *, url_given: bool) -> Settings:
    """Settings for a task that runs here while its tools run in the database container.

    Without a configured URL (``url_given``: --url, db.url, DATABASE_URL) the database is the
    app service's, reached from here through the port its service publishes.
    """
    from dbtasks.settings import parse_url

    if url_given:
        return settings
    app = _app(settings)
    url = _app_database(settings, app)
    if url.get_backend_name() == "sqlite":
        raise ConfigError(
            f"{app.service} uses SQLite: this task needs a database server with the compose "
            "runner (run it inside the container with --runner local)"
        )
    here = app.project.to_host(url)
    return settings.with_url(
        parse_url(here.render_as_string(hide_password=False), project_dir=settings.project_dir)
    )


def _environment(settings: Settings, app: ComposeRunner, url_given: bool) -> dict[str, str]:
    """The exec environment: the database, when it is not the app's own configuration.

    The URL travels in the environment, never argv; a password in it wins over the app's
    ``DATABASE_PASSWORD_FILE`` (an empty value is "not set" to dbtasks).
    """
    env = {"PYTHONUNBUFFERED": "1"}
    if url_given:
        if settings.backend == "sqlite":
            raise ConfigError(
                "the database URL configured here names an SQLite file, which is not inside "
                "the container: with the compose runner, name a server, or configure no URL "
                "to use the app's own (db.compose.url can name a file in the container)"
            )
        url = app.project.to_network(settings.url)
    elif settings.compose.url:
        url = _read_url(settings.compose.url, "db.compose.url")
    else:
        return env
    env["DATABASE_URL"] = url.render_as_string(hide_password=False)
    if url.password is not None:
        env["DATABASE_PASSWORD_FILE"] = ""
    return env


@dataclass
class _Attempt:
    code: int = 0
    stdout: bytearray = field(default_factory=bytearray)
    question: str | None = None
    held: bytes = b""


def _text(stream: IO[str]) -> Callable[[bytes], None]:
    """Bytes from the container onto a text stream, decoded incrementally, flushed at once."""
    decoder = codecs.getincrementaldecoder("utf-8")("replace")

    def write(chunk: bytes) -> None:
        stream.write(decoder.decode(chunk))
        stream.flush()

    return write


def run_task(
    settings: Settings,
    task: str,
    args: Sequence[str],
    *,
    url_given: bool,
    ask: Callable[[str], bool] | None,
    out: IO[str],
    err: IO[str],
) -> int:
    """Run ``dbtasks <task> <args>`` inside the app service's container; its exit code.

    ``ask``: when the task would ask for confirmation, ask with it here, then run the task
    again with ``--yes`` (or end it as a "no" ends it locally).
    """
    app = _app(settings)
    env = _environment(settings, app, url_given)
    # create-migration's result names a file to bring back: read it as JSON.
    fmt = "json" if task == "create-migration" else settings.output_format
    argv = ["dbtasks", task, *args, "--runner", "local", "--format", fmt]
    argv += ["--verbose"] * settings.verbose + ["--quiet"] * settings.quiet
    to_out, to_err = _text(out), _text(err)

    def attempt(argv: list[str], hold: bool) -> _Attempt:
        result = _Attempt()
        pending = bytearray()

        def stderr(chunk: bytes) -> None:
            if not hold:
                to_err(chunk)
                return
            pending.extend(chunk)  # whole lines, to hold back the refusal
            while (end := pending.find(b"\n")) >= 0:
                line = bytes(pending[: end + 1])
                del pending[: end + 1]
                match = _REFUSAL.match(line.rstrip(b"\r\n"))
                if match:
                    result.question = match.group(1).decode("utf-8", "replace")
                    result.held = line
                else:
                    to_err(line)

        log.debug("running %s in %s", task, app.service)
        result.code = app.relay(
            argv,
            env=env,
            stdout=to_out if fmt == "text" else result.stdout.extend,
            stderr=stderr,
        )
        if pending:
            to_err(bytes(pending))
        return result

    done = attempt(argv, hold=ask is not None)
    question = done.question
    if ask is not None and question is not None:
        if done.code != ExitCode.REFUSED:
            to_err(done.held)
        elif ask(question):
            done = attempt([*argv, "--yes"], hold=False)
        else:
            # The action's name, as the task itself would say it (see require_confirmation).
            action = "downgrade" if question.startswith("Revert ") else task
            raise RefusedError(f"{action} cancelled: not confirmed")
    if fmt == "json":
        _report_json(settings, app, task, done, out)
    return done.code


def _report_json(
    settings: Settings, app: ComposeRunner, task: str, done: _Attempt, out: IO[str]
) -> None:
    """The container's JSON object as this machine's reporter prints it."""
    try:
        payload = json.loads(done.stdout)
    except ValueError:
        out.write(done.stdout.decode("utf-8", "replace"))  # not dbtasks' JSON: show it as is
        out.flush()
        return
    payload["runner"] = "compose"
    if task == "create-migration" and payload.get("ok") and payload.get("path"):
        payload["path"] = _bring_back(settings, app, str(payload["path"]))
    if settings.output_format == "json":
        json.dump(payload, out, default=str, indent=2, sort_keys=False)
        out.write("\n")
    elif payload.get("ok"):
        from dbtasks.migrations import NewRevision

        made = NewRevision(
            str(payload.get("revision")), str(payload["path"]), int(payload.get("operations", 0))
        )
        out.writelines(line + "\n" for line in made.text())
    out.flush()


def _bring_back(settings: Settings, app: ComposeRunner, path: str) -> str:
    """Copy a revision the container wrote into this project's versions folder; its path here.

    When the container sees this folder through a bind mount, the file is here already.
    """
    from dbtasks.migrations import alembic_config, script_directory

    versions = Path(script_directory(alembic_config(settings)).versions)
    target = versions / PurePosixPath(path).name
    content = app.read_file(path)
    if target.exists():
        if target.read_bytes() != content:
            raise CommandError(f"{target.name} exists here with other content: not overwritten")
    else:
        versions.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
        log.info("copied %s out of %s", target.name, app.service)
    try:
        return str(target.relative_to(settings.project_dir))
    except ValueError:
        return str(target)
