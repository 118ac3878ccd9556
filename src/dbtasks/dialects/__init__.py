"""Per-engine behaviour, looked up by the URL's backend name.

Everything that differs between PostgreSQL, MySQL/MariaDB and SQLite lives in these modules
and nowhere else.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

from dbtasks.errors import ConfigError

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

    from dbtasks.dialects.base import Dialect

_REGISTRY = {
    "postgresql": "dbtasks.dialects.postgresql:PostgreSQLDialect",
    "mysql": "dbtasks.dialects.mysql:MySQLDialect",
    "mariadb": "dbtasks.dialects.mysql:MySQLDialect",
    "sqlite": "dbtasks.dialects.sqlite:SQLiteDialect",
}


def dialect_for(url: URL) -> Dialect:
    """The dialect for a URL's backend, or a :class:`ConfigError` naming the supported ones."""
    backend = url.get_backend_name()
    try:
        module_name, _, class_name = _REGISTRY[backend].partition(":")
    except KeyError:
        supported = ", ".join(sorted(_REGISTRY))
        raise ConfigError(f"unsupported database {backend!r} (supported: {supported})") from None
    cls: type[Dialect] = getattr(import_module(module_name), class_name)
    return cls()
