"""Settings: the one place that reads configuration.

Sources, highest first: explicit overrides (task flags), the Invoke config (``db.*`` keys from
``invoke.yaml`` or ``INVOKE_DB_*`` variables), the process environment (``DATABASE_URL``,
``DATABASE_PASSWORD_FILE``, ``DBTASKS_ENV``), a ``.env`` file in the project folder, then
defaults. The result is a frozen :class:`Settings`; nothing else in dbtasks reads the
environment.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from dbtasks.errors import ConfigError

DEFAULT_SQLITE = "var/app.db"
DEFAULT_ENVIRONMENT = "development"
FORMATS = ("text", "json")
RUNNERS = ("local", "compose")

# A bare backend name gets the driver dbtasks ships with, so ``postgresql://`` works without
# psycopg2 installed. An explicit ``+driver`` is always respected.
_DEFAULT_DRIVERS = {"postgresql": "psycopg", "mysql": "pymysql", "mariadb": "pymysql"}
_SCHEME_ALIASES = {"postgres": "postgresql"}
# ``//user:`` then everything up to the last ``@`` before whitespace: a password may itself
# hold ``/``, ``:`` or ``@``, and masking a little too much is the safe way to be wrong.
_USERINFO = re.compile(r"(//[^/:@\s]*:)\S*@")


def mask_password(text: str) -> str:
    """Mask the password in anything that looks like a URL (for strings we cannot parse)."""
    return _USERINFO.sub(r"\1***@", text)


def render_url(url: URL) -> str:
    """The only way dbtasks shows a URL: with the password masked."""
    return url.render_as_string(hide_password=True)


@dataclass(frozen=True)
class ComposeSettings:
    """Where the compose runner finds the service's containers."""

    project: str
    app_service: str = "app"
    db_service: str | None = None  # None: derived from the URL's backend by the dialect
    #: URL of the database as seen from inside the compose network (its password, else the
    #: app service's ``DATABASE_PASSWORD_FILE``); None: the app service's ``DATABASE_URL``.
    url: str | None = None


@dataclass(frozen=True)
class Settings:
    """Resolved, immutable configuration for one task run."""

    url: URL
    project_dir: Path
    alembic_ini: Path
    environment: str = DEFAULT_ENVIRONMENT
    output_format: str = "text"
    verbose: bool = False
    quiet: bool = False
    runner: str = "local"
    connect_timeout: int = 10
    backup_dir: Path = Path("backups")
    compose: ComposeSettings = field(default_factory=lambda: ComposeSettings(project="app"))
    #: Backups: age recipients to encrypt to, identity files to decrypt with, a passphrase.
    backup_recipients: tuple[str, ...] = ()
    backup_identity_files: tuple[Path, ...] = ()
    backup_passphrase: str | None = field(default=None, repr=False)
    #: Whether the URL was configured (flag, config, environment, .env) or is the default.
    url_configured: bool = True

    @property
    def backend(self) -> str:
        """The URL's backend name: ``sqlite``, ``postgresql`` or ``mysql``."""
        return self.url.get_backend_name()

    @property
    def display_url(self) -> str:
        return render_url(self.url)

    @property
    def database(self) -> str:
        return self.url.database or ""

    @property
    def secrets(self) -> tuple[str, ...]:
        """Strings that must never be shown (used by the log redaction filter)."""
        found = (self.url.password, self.backup_passphrase)
        return tuple(s for s in found if s)

    def with_url(self, url: URL) -> Settings:
        """A copy pointing at another database (scratch restores, maintenance databases)."""
        from dataclasses import replace

        return replace(self, url=url)


def parse_url(raw: str, *, project_dir: Path, password: str | None = None) -> URL:
    """Parse and normalise a database URL; errors never echo the password."""
    try:
        url = make_url(raw.strip())
    except (ArgumentError, ValueError) as exc:  # ValueError: a port that is not a number
        raise ConfigError(
            f"malformed database URL {_scheme_only(raw)}: "
            "expected backend[+driver]://user:password@host[:port]/database"
        ) from exc
    backend = _SCHEME_ALIASES.get(url.get_backend_name(), url.get_backend_name())
    driver = url.get_driver_name() if "+" in url.drivername else _DEFAULT_DRIVERS.get(backend)
    url = url.set(drivername=f"{backend}+{driver}" if driver else backend)
    if password is not None:
        url = url.set(password=password)
    _check_driver(url)
    if backend == "sqlite":
        url = _absolute_sqlite(url, project_dir)
    elif not url.database:
        raise ConfigError(f"database URL {render_url(url)!r} names no database")
    return url


def _scheme_only(raw: str) -> str:
    """What a malformed URL may show of itself: its scheme. The rest cannot be parsed, so the
    password in it cannot be found and masked (``postgresql://u:secret`` reads as a bad port)."""
    scheme, sep, _ = raw.strip().partition("://")
    if sep and re.fullmatch(r"[A-Za-z][\w+.-]*", scheme):
        return f"'{scheme}://...'"
    return "(no backend:// at its start)"


_EXTRAS = {"postgresql": "postgresql", "mysql": "mysql", "mariadb": "mysql"}


def _check_driver(url: URL) -> None:
    """Refuse now what would fail at connect time: an unknown, unsupported, asyncio or
    uninstalled driver (SQLAlchemy imports the driver only when the engine is made)."""
    from sqlalchemy.exc import NoSuchModuleError

    from dbtasks.dialects import dialect_for

    try:
        dialect_cls = url.get_dialect()
    except NoSuchModuleError as exc:
        raise ConfigError(f"unknown database driver {url.drivername!r}") from exc
    dialect_for(url)  # a backend SQLAlchemy knows but dbtasks does not support
    backend, default = url.get_backend_name(), _DEFAULT_DRIVERS.get(url.get_backend_name())
    if getattr(dialect_cls, "is_async", False):
        blocking = f"{backend}+{default}" if default else backend
        raise ConfigError(
            f"{url.drivername!r} is an asyncio driver; dbtasks needs a blocking one "
            f"({blocking}, the default for {backend}://)"
        )
    try:
        dialect_cls.import_dbapi()
    except ImportError as exc:
        hint = (
            f"pip install 'dbtasks[{_EXTRAS[backend]}]'"
            if url.get_driver_name() == default and backend in _EXTRAS
            else f"install it, or write {backend}:// to use {default}"
        )
        raise ConfigError(
            f"the driver for {url.drivername!r} is not installed (no module {exc.name!r}): {hint}"
        ) from exc


def _absolute_sqlite(url: URL, project_dir: Path) -> URL:
    db = url.database
    if not db or db == ":memory:" or db.startswith("file:"):
        raise ConfigError("SQLite needs a database file, not an in-memory database")
    path = Path(db).expanduser()
    if not path.is_absolute():
        path = project_dir / path
    return url.set(database=str(path))


def _read_secret_file(path: str, what: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8").rstrip("\r\n")
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path!r}: {exc.strerror}") from exc


def _flatten(config: Mapping[str, Any], key: str) -> Any:
    value: Any = config
    for part in key.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def load_settings(
    config: Mapping[str, Any] | None = None,
    *,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    project_dir: Path | None = None,
) -> Settings:
    """Resolve settings: overrides (flags) > config (``db.*``) > environment > .env > defaults.

    ``config`` is the ``db`` section of the Invoke config as a plain mapping.
    """
    config = config or {}
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    project_dir = (project_dir or Path.cwd()).resolve()
    env = dict(_dotenv(project_dir / ".env"))
    env.update(os.environ if environ is None else environ)

    def pick(key: str, env_key: str | None = None, default: Any = None) -> Any:
        for value in (overrides.get(key), _flatten(config, key)):
            if value is not None and value != "":
                return value
        if env_key and env.get(env_key):
            return env[env_key]
        return default

    password_file = pick("password_file", "DATABASE_PASSWORD_FILE")
    password = _read_secret_file(password_file, "password file") if password_file else None
    raw_url = pick("url", "DATABASE_URL", None)
    url_configured = raw_url is not None
    raw_url = raw_url if url_configured else f"sqlite:///{DEFAULT_SQLITE}"
    url = parse_url(str(raw_url), project_dir=project_dir, password=password)

    output_format = str(pick("format", "DBTASKS_FORMAT", "text"))
    if output_format not in FORMATS:
        raise ConfigError(f"unknown output format {output_format!r} (choose from text, json)")
    runner = str(pick("runner", "DBTASKS_RUNNER", "local"))
    if runner not in RUNNERS:
        raise ConfigError(f"unknown runner {runner!r} (choose from local, compose)")
    alembic_ini = Path(str(pick("alembic_ini", "ALEMBIC_CONFIG", "alembic.ini")))
    if not alembic_ini.is_absolute():
        alembic_ini = project_dir / alembic_ini
    backup_dir = Path(str(pick("backup_dir", "DBTASKS_BACKUP_DIR", "backups")))
    if not backup_dir.is_absolute():
        backup_dir = project_dir / backup_dir
    try:
        timeout = int(pick("connect_timeout", "DBTASKS_CONNECT_TIMEOUT", 10))
    except (TypeError, ValueError) as exc:
        raise ConfigError("connect_timeout must be a whole number of seconds") from exc

    passphrase_file = pick("backup_passphrase_file", "DBTASKS_BACKUP_PASSPHRASE_FILE")
    passphrase = (
        _read_secret_file(str(passphrase_file), "backup passphrase file")
        if passphrase_file
        else env.get("DBTASKS_BACKUP_PASSPHRASE") or None
    )
    identity = pick("backup_identity_file", "DBTASKS_BACKUP_IDENTITY_FILE")
    recipients = pick("backup_recipients", "DBTASKS_BACKUP_RECIPIENTS") or ()
    if isinstance(recipients, str):
        recipients = recipients.replace(",", " ").split()

    compose = ComposeSettings(
        project=str(pick("compose.project", "COMPOSE_PROJECT_NAME", _compose_name(project_dir))),
        app_service=str(pick("compose.app_service", "DBTASKS_COMPOSE_APP_SERVICE", "app")),
        db_service=pick("compose.db_service", "DBTASKS_COMPOSE_DB_SERVICE"),
        url=pick("compose.url", "DBTASKS_COMPOSE_URL"),
    )
    return Settings(
        url=url,
        project_dir=project_dir,
        alembic_ini=alembic_ini,
        environment=str(pick("environment", "DBTASKS_ENV", DEFAULT_ENVIRONMENT)),
        output_format=output_format,
        verbose=bool(pick("verbose", None, False)),
        quiet=bool(pick("quiet", None, False)),
        runner=runner,
        connect_timeout=timeout,
        backup_dir=backup_dir,
        compose=compose,
        backup_recipients=tuple(str(r) for r in recipients),
        backup_identity_files=(Path(str(identity)).expanduser(),) if identity else (),
        backup_passphrase=passphrase,
        url_configured=url_configured,
    )


def _compose_name(project_dir: Path) -> str:
    """The project name Compose derives from a folder: lowercase, [a-z0-9_-] only."""
    return re.sub(r"[^a-z0-9_-]", "", project_dir.name.lower()) or "default"


def _dotenv(path: Path) -> Mapping[str, str]:
    if not path.is_file():
        return {}
    from dotenv import dotenv_values

    return {k: v for k, v in dotenv_values(path).items() if v is not None}
