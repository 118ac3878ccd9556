"""Runners: where commands execute (this machine, or the service's compose containers).

``runner_for(settings)`` builds the one the settings name; see :mod:`dbtasks.runners.base` for
the interface both implement.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from dbtasks.errors import ConfigError

if TYPE_CHECKING:
    from dbtasks.runners.base import Runner
    from dbtasks.settings import Settings

_REGISTRY = {
    "local": "dbtasks.runners.local:LocalRunner",
    "compose": "dbtasks.runners.compose:ComposeRunner",
}


def runner_for(settings: Settings) -> Runner:
    """The runner ``settings.runner`` names, built from the settings."""
    try:
        module_name, _, class_name = _REGISTRY[settings.runner].partition(":")
    except KeyError:
        choices = ", ".join(sorted(_REGISTRY))
        raise ConfigError(f"unknown runner {settings.runner!r} (choose from {choices})") from None
    cls: Any = getattr(import_module(module_name), class_name)
    runner: Runner = cls.from_settings(settings)
    return runner
