"""Settings: URL parsing and masking, driver defaults, and where each setting comes from."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from dbtasks.errors import ConfigError, ExitCode
from dbtasks.settings import (
    DEFAULT_ENVIRONMENT,
    load_settings,
    mask_password,
    parse_url,
    render_url,
)

# --------------------------------------------------------------------------- masking


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("postgresql://app:s3cret@db/app", "postgresql://app:***@db/app"),
        ("mysql+pymysql://app:s3cret@db:3306/app?x=1", "mysql+pymysql://app:***@db:3306/app?x=1"),
        # A password may hold '/', ':' or '@': mask up to the last '@' of the URL.
        ("postgresql://app:a/b:c@d@db/app", "postgresql://app:***@db/app"),
        ("at postgresql://app:pw@db/app now", "at postgresql://app:***@db/app now"),
        ("mysql://a:x@h/d and mysql://b:y@h/d", "mysql://a:***@h/d and mysql://b:***@h/d"),
        # Nothing to mask: no password, a port, no URL at all.
        ("postgresql://app@db:5432/app", "postgresql://app@db:5432/app"),
        ("postgresql://db:5432/app, me@example.com", "postgresql://db:5432/app, me@example.com"),
        ("Access denied for user 'app'@'localhost'", "Access denied for user 'app'@'localhost'"),
    ],
)  # fmt: skip
def test_mask_password(text: str, masked: str) -> None:
    assert mask_password(text) == masked


def test_render_url_hides_the_password() -> None:
    url = make_url("postgresql+psycopg://app:s3cret@db/app")
    assert render_url(url) == "postgresql+psycopg://app:***@db/app"


# --------------------------------------------------------------------------- parse_url


@pytest.mark.parametrize(
    ("raw", "drivername"),
    [
        ("postgresql://u@h/d", "postgresql+psycopg"),
        ("postgres://u@h/d", "postgresql+psycopg"),
        ("postgresql+psycopg://u@h/d", "postgresql+psycopg"),
        ("mysql://u@h/d", "mysql+pymysql"),
        ("mariadb://u@h/d", "mariadb+pymysql"),
        ("mysql+pymysql://u@h/d", "mysql+pymysql"),
        ("sqlite:///x.db", "sqlite"),
        ("sqlite+pysqlite:///x.db", "sqlite+pysqlite"),
        ("  postgresql://u@h/d\n", "postgresql+psycopg"),  # pasted with whitespace
    ],
)
def test_driver_defaults(tmp_path: Path, raw: str, drivername: str) -> None:
    assert parse_url(raw, project_dir=tmp_path).drivername == drivername


def test_parse_url_keeps_the_parts(tmp_path: Path) -> None:
    url = parse_url(
        "postgres://app:p%40ss@db.internal:6543/app?sslmode=require", project_dir=tmp_path
    )
    assert (url.username, url.password, url.host, url.port, url.database) == (
        "app", "p@ss", "db.internal", 6543, "app",
    )  # fmt: skip
    assert dict(url.query) == {"sslmode": "require"}


def test_a_password_given_apart_replaces_the_urls(tmp_path: Path) -> None:
    url = parse_url("mysql://app:old@db/app", project_dir=tmp_path, password="from-file")
    assert url.password == "from-file"
    assert parse_url("mysql://app@db/app", project_dir=tmp_path, password="x").password == "x"


def test_sqlite_paths(tmp_path: Path) -> None:
    relative = parse_url("sqlite:///var/app.db", project_dir=tmp_path)
    assert relative.database == str(tmp_path / "var" / "app.db")
    absolute = parse_url("sqlite:////srv/app.db", project_dir=tmp_path)
    assert absolute.database == "/srv/app.db"
    home = parse_url("sqlite:///~/app.db", project_dir=tmp_path)
    assert home.database == str(Path("~/app.db").expanduser())


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("not a url", "malformed database URL (no backend:// at its start)"),
        ("postgresql://u:s3cret@h:port/d", "malformed database URL 'postgresql://...'"),
        ("postgresql://u:s3cret", "malformed database URL 'postgresql://...'"),
        ("postgresql:u:s3cret@h/d", "malformed database URL (no backend:// at its start)"),
        ("nosuch://u:s3cret@h/d", "unknown database driver 'nosuch'"),
        ("postgresql+nosuch://u:s3cret@h/d", "unknown database driver 'postgresql+nosuch'"),
        ("postgresql://u:s3cret@h", "URL 'postgresql+psycopg://u:***@h' names no database"),
        ("sqlite://", "SQLite needs a database file"),
        ("sqlite:///:memory:", "SQLite needs a database file"),
        ("sqlite:///file:x.db?mode=memory&uri=true", "SQLite needs a database file"),
    ],
)  # fmt: skip
def test_bad_urls(tmp_path: Path, raw: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_url(raw, project_dir=tmp_path)
    assert message in str(caught.value)
    assert "s3cret" not in str(caught.value)
    assert caught.value.exit_code == ExitCode.USAGE


def _missing(name: str) -> object:
    def import_dbapi() -> None:
        raise ModuleNotFoundError(f"No module named {name!r}", name=name)

    return import_dbapi


def test_a_default_driver_that_is_not_installed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy.dialects.mysql.pymysql import MySQLDialect_pymysql

    monkeypatch.setattr(MySQLDialect_pymysql, "import_dbapi", _missing("pymysql"))
    with pytest.raises(ConfigError) as caught:
        parse_url("mariadb://u@h/d", project_dir=tmp_path)
    assert str(caught.value) == (
        "the driver for 'mariadb+pymysql' is not installed (no module 'pymysql'): "
        "pip install 'dbtasks[mysql]'"
    )


def test_another_driver_that_is_not_installed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy.dialects.postgresql.psycopg2 import PGDialect_psycopg2

    monkeypatch.setattr(PGDialect_psycopg2, "import_dbapi", _missing("psycopg2"))
    with pytest.raises(ConfigError, match="install it, or write postgresql:// to use psycopg"):
        parse_url("postgresql+psycopg2://u@h/d", project_dir=tmp_path)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("oracle+oracledb://u@h/d", "unsupported database 'oracle' (supported: mariadb, mysql"),
        ("mssql+pyodbc://u@h/d", "unsupported database 'mssql'"),
        ("postgresql+asyncpg://u@h/d", "'postgresql+asyncpg' is an asyncio driver"),
        ("sqlite+aiosqlite:///x.db", "'sqlite+aiosqlite' is an asyncio driver"),
    ],
)
def test_drivers_dbtasks_cannot_use(tmp_path: Path, raw: str, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_url(raw, project_dir=tmp_path)


# --------------------------------------------------------------------------- load_settings


def test_defaults(tmp_path: Path) -> None:
    settings = load_settings({}, environ={}, project_dir=tmp_path)
    assert settings.url.database == str(tmp_path / "var" / "app.db")
    assert settings.environment == DEFAULT_ENVIRONMENT
    assert settings.output_format == "text"
    assert settings.runner == "local"
    assert settings.connect_timeout == 10
    assert settings.alembic_ini == tmp_path / "alembic.ini"
    assert settings.backup_dir == tmp_path / "backups"
    assert settings.project_dir == tmp_path
    assert settings.backend == "sqlite"
    assert settings.secrets == ()


def test_precedence_flag_config_environment_dotenv_default(tmp_path: Path) -> None:
    def url_of(config: dict[str, object], overrides: dict[str, object], env: dict[str, str]) -> str:
        settings = load_settings(config, overrides=overrides, environ=env, project_dir=tmp_path)
        return str(settings.url.database)

    assert url_of({}, {}, {}).endswith("/var/app.db")
    (tmp_path / ".env").write_text("DATABASE_URL=sqlite:///dotenv.db\n", encoding="utf-8")
    assert url_of({}, {}, {}).endswith("/dotenv.db")
    env = {"DATABASE_URL": "sqlite:///environ.db"}
    assert url_of({}, {}, env).endswith("/environ.db")
    config: dict[str, object] = {"url": "sqlite:///config.db"}
    assert url_of(config, {}, env).endswith("/config.db")
    assert url_of(config, {"url": "sqlite:///flag.db"}, env).endswith("/flag.db")
    # Unset and empty values fall through to the next source.
    assert url_of({"url": ""}, {"url": None}, env).endswith("/environ.db")


def test_every_setting_has_its_environment_variable(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("from-file\r\n", encoding="utf-8")
    settings = load_settings(
        {},
        environ={
            "DATABASE_URL": "mysql://app@db/app",
            "DATABASE_PASSWORD_FILE": str(secret),
            "DBTASKS_ENV": "staging",
            "DBTASKS_FORMAT": "json",
            "DBTASKS_RUNNER": "compose",
            "ALEMBIC_CONFIG": "conf/alembic.ini",
            "DBTASKS_BACKUP_DIR": "/srv/backups",
            "DBTASKS_CONNECT_TIMEOUT": "3",
        },
        project_dir=tmp_path,
    )
    assert settings.url.password == "from-file"  # the line ending is not part of it
    assert settings.secrets == ("from-file",)
    assert settings.display_url == "mysql+pymysql://app:***@db/app"
    assert settings.environment == "staging"
    assert settings.output_format == "json"
    assert settings.runner == "compose"
    assert settings.alembic_ini == tmp_path / "conf" / "alembic.ini"
    assert settings.backup_dir == Path("/srv/backups")
    assert settings.connect_timeout == 3


def test_nested_config_keys(tmp_path: Path) -> None:
    settings = load_settings(
        {"compose": {"project": "shop", "app_service": "web"}}, environ={}, project_dir=tmp_path
    )
    assert settings.compose.project == "shop"
    assert settings.compose.app_service == "web"


def test_the_compose_project_name_comes_from_the_folder(tmp_path: Path) -> None:
    folder = tmp_path / "My Project.v2"
    folder.mkdir()
    assert load_settings({}, environ={}, project_dir=folder).compose.project == "myprojectv2"


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"format": "xml"}, "unknown output format 'xml'"),
        ({"runner": "ssh"}, "unknown runner 'ssh'"),
        ({"connect_timeout": "soon"}, "connect_timeout must be a whole number"),
        ({"password_file": "/nonexistent/pw"}, "cannot read password file '/nonexistent/pw'"),
    ],
)
def test_bad_settings(tmp_path: Path, config: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(config, environ={}, project_dir=tmp_path)


def test_with_url_changes_only_the_url(tmp_path: Path) -> None:
    settings = load_settings({"environment": "qa"}, environ={}, project_dir=tmp_path)
    other = settings.with_url(make_url(f"sqlite:///{tmp_path / 'other.db'}"))
    assert other.url.database == str(tmp_path / "other.db")
    assert other.environment == "qa"
    assert settings.url.database != other.url.database
