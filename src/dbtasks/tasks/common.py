"""What every dbtasks task shares: common flags, settings, confirmation, errors -> exit codes.

A task module writes ``@db_task(help={...})`` over a function ``body(settings, **flags)`` that
calls one library function and returns its result. The decorator adds the common flags
(``--url``, ``--format``, ``--verbose``, ``--quiet``, ``--runner``), resolves settings,
configures logging, reports the result, and turns dbtasks errors into ``invoke.Exit`` with the
documented exit code: the only place where that happens.

Only Invoke and the standard library are imported here, so ``inv --list`` stays fast.
"""

from __future__ import annotations

import inspect
import logging
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from invoke.context import Context
from invoke.exceptions import Exit
from invoke.tasks import Task, task

if TYPE_CHECKING:
    from dbtasks.errors import DbtasksError
    from dbtasks.output import Result
    from dbtasks.settings import Settings

COMMON_HELP = {
    "url": "database URL (default: config db.url, DATABASE_URL, else sqlite:///var/app.db)",
    "format": "output format: text (default) or json (one object on stdout)",
    "verbose": "also log the SQL and commands run (passwords masked)",
    "quiet": "only warnings and errors on stderr",
    "runner": "where to run: local (default) or compose (inside the service's containers)",
}
COMMON_DEFAULTS: dict[str, Any] = {
    "url": None,
    "format": None,
    "verbose": False,
    "quiet": False,
    "runner": None,
}
COMPOSE_MODES = ("app", "host", "local")
#: Exit code when stdout is closed early: what a shell reports for a process killed by SIGPIPE.
SIGPIPE_EXIT = 141
# Short flags are chosen, not derived from letters, so -f never means two things.
SHORT_FLAGS = {
    "message": "m",
    "steps": "s",
    "revision": "r",
    "yes": "y",
    "verbose": "v",
    "quiet": "q",
    "url": "u",
}


class DbTask(Task[Any]):
    """An Invoke task whose short flags come from :data:`SHORT_FLAGS` only."""

    def get_arguments(self, ignore_unknown_help: bool | None = None) -> list[Any]:
        # Invoke pops each flag's help while it builds the arguments: a second program run in
        # the same process (an application calling tasks, a test) would show no help. Keep it.
        saved = dict(self.help)
        try:
            return list(super().get_arguments(ignore_unknown_help))
        finally:
            self.help = saved

    def arg_opts(self, name: str, default: Any, taken_names: set[str]) -> dict[str, Any]:
        opts: dict[str, Any] = super().arg_opts(name, default, taken_names)
        short = SHORT_FLAGS.get(name)
        if short and short not in taken_names:
            opts["names"] = [*opts["names"], short]
        return opts


Body = Callable[..., "Result"]


def db_task(
    *,
    help: dict[str, str] | None = None,  # noqa: A002  # Invoke's own keyword
    positional: list[str] | None = None,
    iterable: list[str] | None = None,
    name: str | None = None,
    compose: str = "app",
) -> Callable[[Body], Task[Any]]:
    """Turn ``body(settings, **flags) -> Result`` into an Invoke task with the common flags.

    ``compose`` says where the task runs with ``--runner compose``: ``app`` (the whole task
    inside the app service's container), ``host`` (here, against the app service's database,
    its tools in the database service's container: backups) or ``local`` (here, as with the
    local runner: tasks that never touch the database).
    """
    if compose not in COMPOSE_MODES:
        raise ValueError(f"compose must be one of {', '.join(COMPOSE_MODES)}")

    def decorate(body: Body) -> Task[Any]:
        own = list(inspect.signature(body).parameters.values())[1:]  # drop ``settings``
        params = [inspect.Parameter("c", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
        params += [p.replace(kind=inspect.Parameter.POSITIONAL_OR_KEYWORD) for p in own]
        params += [
            inspect.Parameter(k, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=v)
            for k, v in COMMON_DEFAULTS.items()
        ]
        task_name = name or body.__name__.replace("_", "-")

        def run(c: Context, **kwargs: Any) -> None:
            common = {k: kwargs.pop(k) for k in COMMON_DEFAULTS}
            execute(c, task_name, body, common, kwargs, compose=compose)

        run.__name__ = body.__name__
        run.__doc__ = body.__doc__
        run.__module__ = body.__module__
        run.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]  # read by Invoke
        return cast(
            "Task[Any]",
            task(
                run,
                klass=DbTask,
                auto_shortflags=False,
                help={**COMMON_HELP, **(help or {})},
                positional=positional or [],
                iterable=iterable or [],
            ),
        )

    return decorate


def _plain(value: Any) -> Any:
    """Invoke's nested config proxies as plain dicts."""
    if hasattr(value, "keys"):
        return {k: _plain(value[k]) for k in value}
    return value


def make_confirm(yes: bool) -> Callable[[str], bool]:
    """``--yes`` answers for the user; otherwise ask on a terminal, or refuse without one."""
    from dbtasks.errors import RefusedError

    def confirm(question: str) -> bool:
        if yes:
            return True
        if not sys.stdin.isatty():
            raise RefusedError(f"refused without --yes (no terminal to ask on): {question}")
        print(f"{question} [y/N] ", end="", file=sys.stderr, flush=True)
        return sys.stdin.readline().strip().lower() in ("y", "yes")

    return confirm


def execute(
    c: Context,
    task_name: str,
    body: Body,
    common: dict[str, Any],
    flags: dict[str, Any],
    *,
    compose: str = "app",
) -> None:
    """Settings -> body -> reporter; every expected failure ends in one line and an exit code."""
    from dbtasks.errors import CommandError, ConfigError, DbtasksError, InterruptedByUserError
    from dbtasks.output import Reporter, configure_logging, remove_logging

    config = _plain(c.config.get("db", {}) or {})
    # A first guess, for failures before the settings are resolved; they decide it below.
    fmt = common["format"] or config.get("format") or os.environ.get("DBTASKS_FORMAT") or "text"
    reporter = Reporter(fmt if fmt in ("text", "json") else "text")
    context: dict[str, Any] = {}
    handler = None
    settings: Settings | None = None
    relayed = 0  # the exit code of a task run inside the app container
    try:
        from dbtasks.settings import load_settings

        settings = load_settings(
            config,
            overrides={
                "url": common["url"],
                "format": common["format"],
                "runner": common["runner"],
                "verbose": common["verbose"] or None,
                "quiet": common["quiet"] or None,
            },
            project_dir=_project_dir(config),
        )
        if settings.runner == "compose" and compose == "host":
            from dbtasks.tasks.compose import host_settings

            settings = host_settings(settings, url_given=settings.url_configured)
        reporter.format = settings.output_format
        context = {
            "url": settings.display_url,
            "database": settings.database,
            "runner": settings.runner,
        }
        if settings.runner == "compose" and compose == "app" and not settings.url_configured:
            # The app container's own database, unknown here until the task reports it.
            context.update(url=None, database=None)
        handler = configure_logging(
            verbose=settings.verbose, quiet=settings.quiet, secrets=settings.secrets
        )
        if settings.runner == "compose" and compose == "app":
            relayed = _delegate(settings, task_name, body, common, flags)
        else:
            result = _call(body, settings, flags)
            reporter.success(task_name, result, context)
    except DbtasksError as error:
        _fail(reporter, task_name, error, context)
    except KeyboardInterrupt:
        _fail(reporter, task_name, InterruptedByUserError("interrupted"), context)
    except BrokenPipeError:
        # stdout was closed early (``dbtasks history | head``): not an error worth a traceback.
        # Point stdout at /dev/null so the interpreter's final flush cannot fail again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        raise Exit(code=SIGPIPE_EXIT) from None
    except ValueError as error:  # flag values Invoke parsed but the body could not use
        _fail(reporter, task_name, ConfigError(_redact(str(error), settings)), context)
    except Exception as error:
        # A bug, not an expected failure: still one line (its text redacted), the traceback
        # only with --verbose, where the log filter redacts it too.
        logging.getLogger("dbtasks").debug("unexpected error", exc_info=True)
        message = f"unexpected {type(error).__name__}: {_redact(str(error), settings)}"
        _fail(reporter, task_name, CommandError(message.splitlines()[0]), context)
    finally:
        if handler is not None:
            remove_logging(handler)
    if relayed:
        raise Exit(code=relayed)


def _call(body: Body, settings: Settings, flags: dict[str, Any]) -> Result:
    from sqlalchemy.exc import DBAPIError

    from dbtasks.engine import driver_message
    from dbtasks.errors import CommandError

    try:
        return body(settings, **flags)
    except DBAPIError as exc:  # a statement failed where no narrower handler knew better
        raise CommandError(driver_message(exc, settings.url)) from exc


def _delegate(
    settings: Settings, task_name: str, body: Body, common: dict[str, Any], flags: dict[str, Any]
) -> int:
    """Run the task inside the app service's container (``dbtasks <task> --runner local``);
    its output is relayed as it comes, and its exit code returned. A confirmation it would ask
    for is asked here, where the terminal is."""
    from dbtasks.tasks.compose import run_task

    ask = make_confirm(False) if "yes" in flags and not flags["yes"] else None
    return run_task(
        settings,
        task_name,
        _cli_args(body, flags),
        url_given=settings.url_configured,
        ask=ask if sys.stdin.isatty() else None,
        out=sys.stdout,
        err=sys.stderr,
    )


def _cli_args(body: Body, flags: dict[str, Any]) -> list[str]:
    """The task's own flags as they would be typed (``--name=value``), defaults left out."""
    defaults = {p.name: p.default for p in inspect.signature(body).parameters.values()}
    args: list[str] = []
    for name, value in flags.items():
        if value is None or value == defaults.get(name):
            continue
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            args.append(flag if value else f"--no-{flag[2:]}")
        elif isinstance(value, list | tuple):
            args += [f"{flag}={item}" for item in value]
        else:
            args.append(f"{flag}={value}")
    return args


def _project_dir(config: dict[str, Any]) -> Any:
    from pathlib import Path

    value = config.get("project_dir")
    return Path(value) if value else None


def _redact(text: str, settings: Settings | None) -> str:
    from dbtasks.settings import mask_password

    for secret in settings.secrets if settings is not None else ():
        text = text.replace(secret, "***")
    return mask_password(text)


def _fail(reporter: Any, task_name: str, error: DbtasksError, context: dict[str, Any]) -> None:
    reporter.failure(task_name, error, context)
    raise Exit(code=int(error.exit_code))
