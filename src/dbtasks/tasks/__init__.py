"""The ``db`` Invoke collection: every dbtasks task, ready to add to a project's ``tasks.py``.

from invoke.collection import Collection
from dbtasks.tasks import ns as db

ns = Collection(db)
"""

from __future__ import annotations

from invoke.collection import Collection

from dbtasks.tasks import backup, database, maintenance, migrations

ns = Collection(
    "db",
    database.init,
    database.recreate,
    database.delete_db,
    migrations.create_migration,
    migrations.upgrade,
    migrations.downgrade,
    migrations.migrate,
    migrations.status,
    migrations.history,
    migrations.verify,
    maintenance.maintenance,
    backup.backup,
    backup.restore,
    backup.verify_backup,
    backup.backups,
    backup.prune,
)
# Every key here can be set in invoke.yaml (db: {url: ...}) or as INVOKE_DB_<KEY>. All are None:
# a value here would hide the environment variable below it (DBTASKS_FORMAT,
# DBTASKS_CONNECT_TIMEOUT, ...); dbtasks.settings supplies the defaults.
ns.configure(
    {
        "db": {
            "url": None,
            "password_file": None,
            "format": None,
            "runner": None,
            "environment": None,
            "backup_dir": None,
            "backup_recipients": None,
            "backup_identity_file": None,
            "backup_passphrase_file": None,
            "connect_timeout": None,
            "project_dir": None,
            # --runner compose: project (COMPOSE_PROJECT_NAME), app_service, db_service, url
            "compose": {"project": None, "app_service": None, "db_service": None, "url": None},
        }
    }
)
