"""Backups with ``--runner compose``: the dump and restore tools run in the database service's
container, their streams cross the Docker API into the same pipeline as local backups.

A compose backup restores with the local runner and a local backup through compose; while a
compose backup and restore run, no password shows in ``docker inspect`` (containers and
execs) or in this machine's process list.
"""

from __future__ import annotations

import json
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Cli, CliResult
from tests.docker.conftest import AppDatabase
from tests.docker.project import ComposeProject

pytestmark = pytest.mark.docker
TOOLS = {"postgresql": ("pg_dump", "pg_restore"), "mysql": ("mariadb-dump", "mariadb")}


def in_compose(cli: Cli, project: ComposeProject, *args: str) -> CliResult:
    return ok(cli(*args, "--runner", "compose", env=project.cli_env))


def ok(result: CliResult) -> CliResult:
    assert result.code == 0, (result.argv, result.stdout, result.stderr)
    return result


def _agents(db: AppDatabase, database: str, count: int) -> None:
    values = ", ".join(f"('agent-{i}', 'Agent {i}', 'a{i}@example.org')" for i in range(count))
    db.execute(f"INSERT INTO agents (slug, name, owner_email) VALUES {values}", database)


def test_compose_backup_restores_locally(
    app_db: AppDatabase, compose_project: ComposeProject, cli: Cli, tmp_path: Path
) -> None:
    in_compose(cli, compose_project, "init")
    _agents(app_db, "app", 25)
    backup = tmp_path / "from-compose"
    in_compose(cli, compose_project, "backup", "--path", str(backup), "--compression=zstd")
    manifest = json.loads((backup / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["engine"] == app_db.engine
    assert manifest["database"] == "app"
    # The dump tool was the database container's (compare: the server it dumped).
    dump_tool = manifest["tool"]["name"]
    assert dump_tool in (TOOLS[app_db.engine][0], "mysqldump")
    in_compose(cli, compose_project, "verify-backup", str(backup))

    scratch = app_db.new_scratch()
    restored = ok(cli("restore", str(backup), url=app_db.url(scratch)))
    assert "counts match the manifest" in restored.stdout
    assert app_db.rows("agents", scratch) == 25
    assert app_db.snapshot(scratch) == app_db.snapshot()


def test_local_backup_restores_through_compose(
    app_db: AppDatabase, compose_project: ComposeProject, cli: Cli, tmp_path: Path
) -> None:
    scratch = app_db.new_scratch()
    ok(cli("init", url=app_db.url(scratch)))
    _agents(app_db, scratch, 40)
    backup = tmp_path / "from-here"
    ok(cli("backup", "--path", str(backup), url=app_db.url(scratch)))
    assert app_db.snapshot() is None
    restored = in_compose(cli, compose_project, "restore", str(backup), "--format=json")
    result = json.loads(restored.stdout)
    assert result["runner"] == "compose"
    assert app_db.rows("agents") == 40
    assert app_db.snapshot() == app_db.snapshot(scratch)
    # The app itself sees its restored database at head.
    status = json.loads(in_compose(cli, compose_project, "status", "--format=json").stdout)
    assert status["up_to_date"] is True


@dataclass
class Sampler:
    """Samples ``docker inspect`` of the project's containers, ``exec_inspect`` of their execs,
    and this machine's process list, looking for secrets, until stopped."""

    project: ComposeProject
    secrets: list[str]
    leaks: list[str] = field(default_factory=list)
    commands: set[str] = field(default_factory=set)
    samples: int = 0
    stop: threading.Event = field(default_factory=threading.Event)

    def _check(self, where: str, text: str) -> None:
        for secret in self.secrets:
            if secret in text:
                self.leaks.append(f"{where}: {text[:200]}")

    def run(self, api: Any) -> None:
        while not self.stop.is_set():
            label = f"label=com.docker.compose.project={self.project.name}"
            command = ["docker", "ps", "-q", "--filter", label]
            ids = subprocess.run(command, capture_output=True, text=True, check=True).stdout.split()
            inspected = subprocess.run(
                ["docker", "inspect", *ids], capture_output=True, text=True, check=True
            ).stdout
            self._check("docker inspect", inspected)
            for container in json.loads(inspected):
                for exec_id in container.get("ExecIDs") or []:
                    try:
                        info = api.exec_inspect(exec_id)
                    except Exception:  # noqa: BLE001, S112  # an exec may vanish between the calls
                        continue
                    self._check("exec_inspect", json.dumps(info))
                    process = info.get("ProcessConfig") or {}
                    self.commands.update(str(a).rsplit("/", 1)[-1] for a in process["arguments"])
            processes = subprocess.run(
                ["ps", "-eo", "pid,args"], capture_output=True, text=True, check=True
            ).stdout
            self._check("ps", processes)
            self.samples += 1


def test_no_password_in_inspect_or_process_list(
    app_db: AppDatabase, compose_project: ComposeProject, cli: Cli, tmp_path: Path
) -> None:
    import docker

    in_compose(cli, compose_project, "init")
    # Enough rows that the dump and the restore last a while (sampled many times).
    app_db.execute("CREATE TABLE bulk_rows (id INTEGER PRIMARY KEY, payload VARCHAR(250))")
    app_db.execute("CREATE TABLE digits (d INTEGER)")
    app_db.execute("INSERT INTO digits VALUES (0), (1), (2), (3), (4), (5), (6), (7), (8), (9)")
    app_db.execute(
        "INSERT INTO bulk_rows SELECT a.d + 10 * b.d + 100 * c.d + 1000 * e.d + 10000 * f.d, "
        "REPEAT('x', 250) FROM digits a, digits b, digits c, digits e, digits f"
    )
    client = docker.from_env()
    sampler = Sampler(compose_project, list(compose_project.passwords.values()))
    thread = threading.Thread(target=sampler.run, args=(client.api,), daemon=True)
    thread.start()
    try:
        backup = tmp_path / "sampled"
        in_compose(cli, compose_project, "backup", "--path", str(backup), "--compression=none")
        in_compose(cli, compose_project, "restore", str(backup), "--clean", "--yes")
    finally:
        sampler.stop.set()
        thread.join(30)
        client.close()
    assert app_db.rows("bulk_rows") == 100_000
    assert sampler.leaks == []
    dump, restore = TOOLS[app_db.engine]
    # The samples did see the tools run (in the database container, through execs).
    assert {dump, restore} <= sampler.commands or {"mysqldump", "mysql"} <= sampler.commands, (
        sampler.samples,
        sorted(sampler.commands),
    )
