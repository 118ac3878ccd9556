"""The manifest: a JSON file beside each backup that says what it holds and how to check it.

It is written last, after the data is on disk, and carries its own checksum (``checksum``: the
SHA-256 of the manifest without that field, keys sorted), so a damaged manifest is caught as
surely as damaged data. It never holds a password or a key: recipients appear as fingerprints.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from dbtasks.backup.errors import BackupError

FORMAT = "dbtasks-backup"
FORMAT_VERSION = 1
NAME = "manifest.json"
TYPES = ("full", "schema", "incremental")


@dataclass
class StoredFile:
    """One file of a backup: its name in the backup folder, checksum and sizes."""

    name: str
    role: str  # "data" (a native dump), "delta" (an incremental's script), "key"
    sha256: str
    size: int
    #: Bytes before compression and encryption (None for files stored as they are).
    raw_size: int | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StoredFile:
        return cls(
            name=str(data["name"]),
            role=str(data["role"]),
            sha256=str(data["sha256"]),
            size=int(data["size"]),
            raw_size=None if data.get("raw_size") is None else int(data["raw_size"]),
        )


@dataclass
class Manifest:
    """Everything dbtasks knows about one backup."""

    id: str
    type: str
    created_at: str
    finished_at: str
    engine: str
    server_version: str
    tool: dict[str, str]
    database: str
    alembic_revision: list[str] | None
    compression: dict[str, Any]
    encryption: dict[str, Any] | None
    files: list[StoredFile]
    tables: dict[str, dict[str, int]]
    options: dict[str, Any]
    parent: dict[str, str] | None = None
    incremental: dict[str, Any] | None = None
    dbtasks_version: str = ""
    format: str = FORMAT
    format_version: int = FORMAT_VERSION
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        extra = data.pop("extra")
        return {**data, **extra}

    def file(self, role: str) -> StoredFile | None:
        return next((f for f in self.files if f.role == role), None)

    def rows(self) -> dict[str, int]:
        return {name: int(info.get("rows", 0)) for name, info in self.tables.items()}

    @property
    def encrypted(self) -> bool:
        return self.encryption is not None

    # -- on disk

    def write(self, folder: Path) -> str:
        """Write ``manifest.json`` into ``folder`` (temp name, fsync, rename); its SHA-256."""
        body = self.as_dict()
        body["checksum"] = _checksum(body)
        text = json.dumps(body, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
        temp = folder / f".{NAME}.tmp"
        with temp.open("w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        temp.replace(folder / NAME)
        return hashlib.sha256(text.encode()).hexdigest()

    @classmethod
    def read(cls, folder: Path) -> tuple[Manifest, str]:
        """The manifest in ``folder`` and the SHA-256 of its file; checked, or BackupError."""
        path = folder / NAME
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            raise BackupError(f"{str(folder)!r} is not a finished backup: no {NAME}") from None
        except OSError as exc:
            raise BackupError(f"cannot read {str(path)!r}: {exc.strerror}") from exc
        try:
            body = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise BackupError(f"{str(path)!r} is corrupt (not JSON)") from exc
        if not isinstance(body, dict) or body.get("format") != FORMAT:
            raise BackupError(f"{str(path)!r} is not a dbtasks backup manifest")
        if body.get("format_version") != FORMAT_VERSION:
            raise BackupError(
                f"{str(path)!r} has format version {body.get('format_version')!r}; "
                f"this dbtasks reads version {FORMAT_VERSION}"
            )
        stored = body.pop("checksum", None)
        if stored != _checksum(body):
            raise BackupError(f"{str(path)!r} is corrupt (its checksum does not match)")
        try:
            manifest = cls._from_dict(body)
        except (KeyError, TypeError, ValueError) as exc:
            raise BackupError(f"{str(path)!r} is corrupt (missing or bad field {exc})") from exc
        return manifest, hashlib.sha256(raw).hexdigest()

    @classmethod
    def _from_dict(cls, body: dict[str, Any]) -> Manifest:
        known = {f for f in cls.__dataclass_fields__ if f != "extra"}
        values = {k: v for k, v in body.items() if k in known}
        values["files"] = [StoredFile.from_dict(f) for f in body["files"]]
        values["extra"] = {k: v for k, v in body.items() if k not in known}
        manifest = cls(**values)
        if manifest.type not in TYPES:
            raise ValueError(f"type {manifest.type!r}")
        return manifest


def _checksum(body: dict[str, Any]) -> str:
    canonical = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()
