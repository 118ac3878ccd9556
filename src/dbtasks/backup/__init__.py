"""Backups that are verified restorable: full, schema and incremental, compressed, encrypted.

Modules, one job each: :mod:`~dbtasks.backup.store` (the backup folder and its layout),
:mod:`~dbtasks.backup.manifest` (the JSON beside each backup), :mod:`~dbtasks.backup.codecs`,
:mod:`~dbtasks.backup.crypto`, :mod:`~dbtasks.backup.pipeline` (dump -> compress -> encrypt ->
file, and back), :mod:`~dbtasks.backup.create`, :mod:`~dbtasks.backup.incremental`,
:mod:`~dbtasks.backup.restore`, :mod:`~dbtasks.backup.verify`, :mod:`~dbtasks.backup.retention`,
:mod:`~dbtasks.backup.progress`; engine-specific dump formats live in
:mod:`dbtasks.backup.formats`, reached through each dialect's ``backup_format()``.
"""
