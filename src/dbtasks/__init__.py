"""dbtasks: database lifecycle tasks for SQLAlchemy/Alembic services.

The package is importable without pulling in SQLAlchemy, Alembic, Docker or rich: those load
only when a task actually runs, so ``inv --list`` stays fast.
"""

__version__ = "0.1.0"
