"""Invoke tasks for this repository: the dbtasks ``db`` collection, run on the example service.

inv --list          inv db.init          inv db.status
"""

from pathlib import Path

from invoke.collection import Collection

from dbtasks.tasks import ns as db

ns = Collection(db)
# Paths (alembic.ini, var/, backups/) resolve from this folder, wherever inv is started.
ns.configure({"db": {"project_dir": str(Path(__file__).resolve().parent)}})
