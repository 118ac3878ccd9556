"""The compose runner's overhead against the local runner: ``status`` and a backup of the same
database, side by side in one run.

Brings up a throwaway compose project (``tests/docker/project.py``: ``.ci/compose-up`` under a
name and ports of its own), fills the app's database with ``--rows`` rows, then runs each
command with both runners, interleaved (noise hits both alike), and prints medians and the
ratio compose / local. The local runner reaches the same database through the published port
and uses this machine's client tools; the compose runner runs ``status`` inside the app
container and the dump tool inside the database container. The project is removed at the end.

    python benchmarks/bench_compose.py [--runs 7] [--rows 400000] [--engines postgresql,mysql]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # the project helper lives with the compose suite

from tests.docker.project import ComposeProject, engine_problem  # noqa: E402

SERVICES = {"postgresql": "postgres", "mysql": "mysql"}
DRIVERS = {"postgresql": "postgresql+psycopg", "mysql": "mysql+pymysql"}


def dbtasks(*args: str, env: dict[str, str]) -> float:
    """Run ``dbtasks ARGS``; its wall time."""
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "dbtasks", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"dbtasks {' '.join(args)} failed: {done.stderr.strip()}")
    return elapsed


def fill(env: dict[str, str], engine: str, rows: int) -> None:
    """Rows to dump: a table of ``rows`` rows of 250 bytes (through the host connection)."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    from dbtasks.settings import parse_url

    url = parse_url(env["DATABASE_URL"], project_dir=REPO)
    url = url.set(password=Path(env["DATABASE_PASSWORD_FILE"]).read_text().strip())
    eng = create_engine(url, poolclass=NullPool)
    number = " + ".join(f"{10**i} * d{i}.d" for i in range(6))
    tables = ", ".join(f"digits d{i}" for i in range(6))
    with eng.begin() as conn:
        conn.execute(text("DROP TABLE IF EXISTS bench_rows"))
        conn.execute(text("DROP TABLE IF EXISTS digits"))
        conn.execute(text("CREATE TABLE digits (d INTEGER)"))
        conn.execute(text("INSERT INTO digits VALUES (0),(1),(2),(3),(4),(5),(6),(7),(8),(9)"))
        conn.execute(text("CREATE TABLE bench_rows (id INTEGER PRIMARY KEY, payload VARCHAR(250))"))
        conn.execute(
            text(
                f"INSERT INTO bench_rows SELECT {number}, REPEAT('x', 250) FROM {tables} "
                f"WHERE {number} < :rows"
            ),
            {"rows": rows},
        )
    eng.dispose()


def measure(
    project: ComposeProject, engine: str, args: argparse.Namespace, work: Path
) -> list[str]:
    project.use_app_database(engine)
    port = project.ports[engine]
    password_file = work / f"{engine}.password"
    password_file.write_text(project.passwords[f"{SERVICES[engine]}_password"] + "\n")
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "DBTASKS_"))}
    local_env = {
        **base,
        "DATABASE_URL": f"{DRIVERS[engine]}://app@127.0.0.1:{port}/app",
        "DATABASE_PASSWORD_FILE": str(password_file),
    }
    compose_env = {**base, **project.cli_env}
    dbtasks("init", "-q", env=local_env)
    fill(local_env, engine, args.rows)

    rows: list[str] = []
    status: dict[str, list[float]] = {"local": [], "compose": []}
    for _ in range(args.runs):
        status["local"].append(dbtasks("status", env=local_env))
        status["compose"].append(dbtasks("status", "--runner", "compose", env=compose_env))
    rows.append(line(engine, "status", status))

    for codec in ("none", "gzip"):
        times: dict[str, list[float]] = {"local": [], "compose": []}
        size = 0
        for run in range(max(3, args.runs // 2)):
            for runner, env in (("local", local_env), ("compose", compose_env)):
                folder = work / f"{engine}-{codec}-{runner}-{run}"
                extra = ("--runner", "compose") if runner == "compose" else ()
                times[runner].append(
                    dbtasks(
                        "backup", "--path", str(folder), f"--compression={codec}", *extra, env=env
                    )
                )
                manifest = json.loads((folder / "manifest.json").read_text())
                size = sum(int(f["raw_size"]) for f in manifest["files"])
                shutil.rmtree(folder)
        rows.append(
            line(engine, f"backup --compression={codec} ({size / 1e6:.0f} MB dump)", times, size)
        )
    return rows


def line(engine: str, what: str, times: dict[str, list[float]], size: int = 0) -> str:
    local, compose = statistics.median(times["local"]), statistics.median(times["compose"])
    text = f"{engine:<11} {what:<40} {local:7.2f} s {compose:7.2f} s {compose / local:6.2f}x"
    if size:
        text += f"   {size / local / 1e6:6.0f} vs {size / compose / 1e6:4.0f} MB/s"
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="status runs per runner")
    parser.add_argument("--rows", type=int, default=400_000, help="rows of 250 bytes to dump")
    parser.add_argument("--engines", default="postgresql,mysql")
    args = parser.parse_args()
    problem = engine_problem()
    if problem:
        sys.exit(f"needs a Docker engine: {problem}")
    work = Path(tempfile.mkdtemp(prefix="dbtasks-bench-compose-"))
    print("bringing up a compose project (.ci/compose-up) ...", flush=True)
    project = ComposeProject.up()
    try:
        rows = []
        for engine in args.engines.split(","):
            rows += measure(project, engine.strip(), args, work)
    finally:
        project.down()
        shutil.rmtree(work, ignore_errors=True)
    print(f"\ncompose runner against local runner, same database (medians; {args.rows} rows)")
    print(f"{'engine':<11} {'command':<40} {'local':>9} {'compose':>9} {'ratio':>7}")
    for row in rows:
        print(row)


if __name__ == "__main__":
    main()
