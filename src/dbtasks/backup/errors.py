"""Backup failures: one clear line, exit code 1 (a :class:`~dbtasks.errors.CommandError`)."""

from __future__ import annotations

from dbtasks.errors import CommandError, ConfigError


class BackupError(CommandError):
    """A backup could not be made, or a stored backup is corrupt, incomplete or unreadable."""


class BackupUsageError(ConfigError):
    """Flags that cannot work together, or a path that is not a backup (exit code 2)."""
