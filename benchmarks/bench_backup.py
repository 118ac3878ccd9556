"""Backup and restore speed and memory: dbtasks against the engines' own tools.

    python benchmarks/bench_backup.py                  # 1 GB PostgreSQL and MariaDB databases
    python benchmarks/bench_backup.py --sizes 1,4      # and a 4 GB PostgreSQL one (dbtasks only)
    python benchmarks/bench_backup.py --keep           # keep the databases for another run

Builds the databases on the servers named by ``--pg-url`` / ``--my-url`` (defaults: the local
test servers), then times, side by side: ``dbtasks backup`` with gzip, zstd and none against
``pg_dump -Fc`` and ``pg_dump -Fc -Z0`` (MariaDB: against ``mariadb-dump | gzip``), and
``dbtasks restore`` against ``pg_restore`` (MariaDB: ``gunzip | mariadb``). Each figure is
the wall time, the throughput over the uncompressed dump size, and the peak RSS of the timed
process (of the dbtasks process for dbtasks: its tools run as children). At the end it prints
whether the targets hold: zstd at most 0.5x ``pg_dump -Fc``'s wall time, gzip at most 1.1x,
restore at most 1.1x ``pg_restore``, dbtasks' peak RSS under 150 MB at every size.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import URL, make_url

MB = 1024 * 1024
#: About how many bytes of table data one row of the benchmark table takes.
ROW_BYTES = 250
RSS_LIMIT_MB = 150


@dataclass
class Run:
    label: str
    seconds: float
    rss_mb: float
    output_bytes: int


def timed(label: str, argv: list[str], env: dict[str, str] | None = None, **kw: object) -> Run:
    """Run a command; its wall time and the peak RSS of that process."""
    started = time.monotonic()
    proc = subprocess.Popen(argv, env={**os.environ, **(env or {})}, **kw)  # type: ignore[call-overload]
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.monotonic() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{label}: {argv[0]} exited {proc.returncode}")
    return Run(label, seconds, usage.ru_maxrss / 1024, 0)


def timed_pipe(
    label: str, first: list[str], second: list[str], out: Path, env: dict[str, str]
) -> Run:
    """``first | second > out``: wall time; RSS is the larger of the two processes'."""
    started = time.monotonic()
    with out.open("wb") as sink:
        a = subprocess.Popen(first, stdout=subprocess.PIPE, env={**os.environ, **env})
        b = subprocess.Popen(second, stdin=a.stdout, stdout=sink, env={**os.environ, **env})
        if a.stdout is not None:
            a.stdout.close()  # the second process holds the pipe now
        _, status_b, usage_b = os.wait4(b.pid, 0)
        _, status_a, usage_a = os.wait4(a.pid, 0)
    if status_a or status_b:
        raise SystemExit(f"{label}: pipeline failed")
    return Run(
        label, time.monotonic() - started, max(usage_a.ru_maxrss, usage_b.ru_maxrss) / 1024, 0
    )


def psql(url: URL, sql: str, database: str | None = None) -> str:
    env = pg_env(url)
    db = database or "postgres"
    done = subprocess.run(
        ["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-d", db, "-c", sql],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def pg_env(url: URL) -> dict[str, str]:
    env = {
        "PGHOST": url.host or "127.0.0.1",
        "PGPORT": str(url.port or 5432),
        "PGUSER": url.username or "postgres",
    }
    if url.password:
        env["PGPASSWORD"] = url.password
    return env


def my_env(url: URL) -> dict[str, str]:
    env = {
        "MYSQL_HOST": url.host or "127.0.0.1",
        "MYSQL_TCP_PORT": str(url.port or 3306),
        "USER": url.username or "root",
    }
    if url.password:
        env["MYSQL_PWD"] = url.password
    return env


def mariadb(url: URL, sql: str, database: str = "") -> str:
    argv = ["mariadb", "-N", "-B", "-e", sql] + ([database] if database else [])
    done = subprocess.run(
        argv, env={**os.environ, **my_env(url)}, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def build_pg(url: URL, name: str, gb: float) -> None:
    rows = int(gb * 1024 * MB / ROW_BYTES)
    exists = psql(url, f"SELECT count(*) FROM pg_database WHERE datname = '{name}'")
    if exists == "1":
        print(f"# using existing PostgreSQL database {name}", flush=True)
        return
    print(f"# building PostgreSQL database {name}: {rows} rows ...", flush=True)
    psql(url, f'CREATE DATABASE "{name}"')
    psql(
        url,
        "CREATE TABLE events (id bigserial PRIMARY KEY, account_id int NOT NULL, "
        "kind text NOT NULL, payload jsonb, body text, created_at timestamptz NOT NULL);"
        "CREATE INDEX ON events (account_id);"
        f"INSERT INTO events (account_id, kind, payload, body, created_at) "
        f"SELECT mod(g, 10000), 'kind_' || mod(g, 17), "
        f"jsonb_build_object('n', g, 'tag', md5(g::text)), "
        f"repeat(md5(g::text), 3) || ' text ü ' || g, now() - g * interval '1 second' "
        f"FROM generate_series(1, {rows}) g; ANALYZE events;",
        database=name,
    )


def build_my(url: URL, name: str, gb: float) -> None:
    rows = int(gb * 1024 * MB / ROW_BYTES)
    if (
        mariadb(
            url, f"SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = '{name}'"
        )
        == "1"
    ):
        print(f"# using existing MariaDB database {name}", flush=True)
        return
    print(f"# building MariaDB database {name}: {rows} rows ...", flush=True)
    mariadb(url, f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    mariadb(
        url,
        "CREATE TABLE events (id bigint AUTO_INCREMENT PRIMARY KEY, account_id int NOT NULL, "
        "kind varchar(20) NOT NULL, payload json, body text, created_at timestamp(6) NOT NULL, "
        "KEY (account_id)) ENGINE=InnoDB;"
        "INSERT INTO events (account_id, kind, payload, body, created_at) "
        "SELECT MOD(seq, 10000), CONCAT('kind_', MOD(seq, 17)), "
        "JSON_OBJECT('n', seq, 'tag', MD5(seq)), CONCAT(REPEAT(MD5(seq), 3), ' text ü ', seq), "
        f"NOW() - INTERVAL seq SECOND FROM seq_1_to_{rows};",
        database=name,
    )


def dbtasks(*args: str) -> list[str]:
    return [sys.executable, "-m", "dbtasks", *args, "--quiet"]


def raw_size(backup: Path) -> int:
    import json

    manifest = json.loads((backup / "manifest.json").read_text())
    return int(manifest["files"][0]["raw_size"])


def size_of(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def table(
    title: str, runs: list[Run], raw: int, reference: Run | None, restore_ref: Run | None
) -> None:
    """One table: backups compared with ``reference``, restores with ``restore_ref``."""
    print(f"\n{title} (dump size {raw / MB:.0f} MB uncompressed)")
    print(f"{'':34} {'wall s':>8} {'MB/s':>8} {'peak RSS MB':>12} {'output MB':>10} {'vs ref':>7}")
    for run in runs:
        ref = restore_ref if "restore" in run.label or "| mariadb" in run.label else reference
        ratio = f"{run.seconds / ref.seconds:.2f}x" if ref else ""
        out = f"{run.output_bytes / MB:.0f}" if run.output_bytes else "-"
        print(
            f"{run.label:34} {run.seconds:8.1f} {raw / MB / run.seconds:8.0f} "
            f"{run.rss_mb:12.0f} {out:>10} {ratio:>7}"
        )


def bench_pg(url: URL, name: str, work: Path, full: bool) -> tuple[list[Run], int, dict[str, Run]]:
    env = pg_env(url)
    db_url = url.set(database=name).render_as_string(hide_password=False)
    runs: dict[str, Run] = {}
    raw = 0
    if full:
        out = work / "pg.dump"
        runs["pg_dump -Fc"] = timed("pg_dump -Fc", ["pg_dump", "-Fc", "-f", str(out), name], env)
        runs["pg_dump -Fc"].output_bytes = size_of(out)
        out.unlink()
        z0 = work / "pg-z0.dump"
        runs["pg_dump -Fc -Z0"] = timed(
            "pg_dump -Fc -Z0", ["pg_dump", "-Fc", "-Z0", "-f", str(z0), name], env
        )
        runs["pg_dump -Fc -Z0"].output_bytes = size_of(z0)
        z0.unlink()
    for codec in ("gzip", "zstd", "none") if full else ("zstd", "gzip"):
        path = work / f"pg-{codec}"
        label = f"dbtasks backup --compression {codec}"
        runs[label] = timed(
            label, dbtasks("backup", "--url", db_url, "--compression", codec, "--path", str(path))
        )
        runs[label].output_bytes = size_of(path)
        raw = raw_size(path)
        if codec != "zstd":
            shutil.rmtree(path)
    # Restores: dbtasks (zstd backup) against pg_restore of a pg_dump -Fc archive.
    target = f"{name}_restore"
    if full:
        archive = work / "pg-ref.dump"
        subprocess.run(
            ["pg_dump", "-Fc", "-f", str(archive), name], env={**os.environ, **env}, check=True
        )
        psql(url, f'DROP DATABASE IF EXISTS "{target}"')
        psql(url, f'CREATE DATABASE "{target}"')
        runs["pg_restore"] = timed("pg_restore", ["pg_restore", "-d", target, str(archive)], env)
        archive.unlink()
    psql(url, f'DROP DATABASE IF EXISTS "{target}"')
    label = "dbtasks restore (zstd backup)"
    target_url = url.set(database=target).render_as_string(hide_password=False)
    runs[label] = timed(label, dbtasks("restore", str(work / "pg-zstd"), "--url", target_url))
    psql(url, f'DROP DATABASE IF EXISTS "{target}"')
    shutil.rmtree(work / "pg-zstd")
    return list(runs.values()), raw, runs


def bench_my(url: URL, name: str, work: Path) -> tuple[list[Run], int, dict[str, Run]]:
    env = my_env(url)
    db_url = url.set(database=name).render_as_string(hide_password=False)
    runs: dict[str, Run] = {}
    out = work / "my.sql.gz"
    label = "mariadb-dump | gzip"
    runs[label] = timed_pipe(
        label,
        ["mariadb-dump", "--single-transaction", "--routines", "--triggers", "--events", name],
        ["gzip"],
        out,
        env,
    )
    runs[label].output_bytes = size_of(out)
    raw = 0
    for codec in ("gzip", "zstd"):
        path = work / f"my-{codec}"
        label = f"dbtasks backup --compression {codec}"
        runs[label] = timed(
            label, dbtasks("backup", "--url", db_url, "--compression", codec, "--path", str(path))
        )
        runs[label].output_bytes = size_of(path)
        raw = raw_size(path)
    target = f"{name}_restore"
    mariadb(
        url, f"DROP DATABASE IF EXISTS `{target}`; CREATE DATABASE `{target}` CHARACTER SET utf8mb4"
    )
    started = time.monotonic()
    subprocess.run(
        ["bash", "-c", f'gunzip -c "{out}" | mariadb "{target}"'],
        env={**os.environ, **env},
        check=True,
    )
    runs["gunzip | mariadb"] = Run("gunzip | mariadb", time.monotonic() - started, 0, 0)
    mariadb(url, f"DROP DATABASE IF EXISTS `{target}`")
    label = "dbtasks restore (gzip backup)"
    target_url = url.set(database=target).render_as_string(hide_password=False)
    runs[label] = timed(label, dbtasks("restore", str(work / "my-gzip"), "--url", target_url))
    mariadb(url, f"DROP DATABASE IF EXISTS `{target}`")
    out.unlink()
    for codec in ("gzip", "zstd"):
        shutil.rmtree(work / f"my-{codec}")
    return list(runs.values()), raw, runs


def cleanup(
    args: argparse.Namespace, pg: URL, my: URL, made_pg: list[str], made_my: list[str], work: Path
) -> None:
    """Drop the benchmark databases (unless --keep) and the dumps."""
    if not args.keep:
        for name in made_pg:
            psql(pg, f'DROP DATABASE IF EXISTS "{name}"')
        for name in made_my:
            mariadb(my, f"DROP DATABASE IF EXISTS `{name}`")
    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--pg-url",
        default=os.environ.get(
            "DBTASKS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
        ),
    )
    parser.add_argument(
        "--my-url",
        default=os.environ.get("DBTASKS_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306/mysql"),
    )
    parser.add_argument(
        "--sizes", default="1", help="database sizes in GB; the first gets every comparison"
    )
    parser.add_argument("--no-mariadb", action="store_true", help="skip the MariaDB part")
    parser.add_argument("--keep", action="store_true", help="keep the benchmark databases")
    parser.add_argument(
        "--workdir", default=None, help="where dumps go (default: a temporary folder)"
    )
    args = parser.parse_args()
    pg, my = make_url(args.pg_url), make_url(args.my_url)
    sizes = [float(s) for s in args.sizes.split(",")]
    checks: list[tuple[str, bool]] = []
    made_pg: list[str] = []
    made_my: list[str] = []
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench-backup-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        for i, gb in enumerate(sizes):
            name = f"bench_backup_pg_{str(gb).replace('.', '_')}"
            build_pg(pg, name, gb)
            made_pg.append(name)
            runs, raw, by = bench_pg(pg, name, work, full=i == 0)
            ref = by.get("pg_dump -Fc")
            size = int(psql(pg, f"SELECT pg_database_size('{name}')"))
            title = f"PostgreSQL, {gb:g} GB database ({size / MB:.0f} MB on disk)"
            table(title, runs, raw, ref, by.get("pg_restore"))
            for label, run in by.items():
                if label.startswith("dbtasks"):
                    checks.append(
                        (
                            f"{gb:g} GB: {label} peak RSS {run.rss_mb:.0f} MB < {RSS_LIMIT_MB} MB",
                            run.rss_mb < RSS_LIMIT_MB,
                        )
                    )
            if ref:
                z, g = (
                    by["dbtasks backup --compression zstd"],
                    by["dbtasks backup --compression gzip"],
                )
                r, pr = by["dbtasks restore (zstd backup)"], by["pg_restore"]
                checks.append(
                    (
                        f"zstd {z.seconds / ref.seconds:.2f}x pg_dump -Fc <= 0.5x",
                        z.seconds <= 0.5 * ref.seconds,
                    )
                )
                checks.append(
                    (
                        f"gzip {g.seconds / ref.seconds:.2f}x pg_dump -Fc <= 1.1x",
                        g.seconds <= 1.1 * ref.seconds,
                    )
                )
                checks.append(
                    (
                        f"restore {r.seconds / pr.seconds:.2f}x pg_restore <= 1.1x",
                        r.seconds <= 1.1 * pr.seconds,
                    )
                )
        if not args.no_mariadb:
            name = f"bench_backup_my_{str(sizes[0]).replace('.', '_')}"
            build_my(my, name, sizes[0])
            made_my.append(name)
            runs, raw, by = bench_my(my, name, work)
            size = int(
                mariadb(
                    my,
                    "SELECT SUM(DATA_LENGTH + INDEX_LENGTH) FROM information_schema.TABLES "
                    f"WHERE TABLE_SCHEMA = '{name}'",
                )
            )
            title = f"MariaDB, {sizes[0]:g} GB database ({size / MB:.0f} MB on disk)"
            table(title, runs, raw, by["mariadb-dump | gzip"], by["gunzip | mariadb"])
            for label, run in by.items():
                if label.startswith("dbtasks"):
                    checks.append(
                        (
                            f"MariaDB: {label} peak RSS {run.rss_mb:.0f} MB < {RSS_LIMIT_MB} MB",
                            run.rss_mb < RSS_LIMIT_MB,
                        )
                    )
    finally:
        cleanup(args, pg, my, made_pg, made_my, work)
    print("\nTargets")
    for text, ok in checks:
        print(f"  {'PASS' if ok else 'FAIL'}  {text}")
    sys.exit(0 if all(ok for _, ok in checks) else 1)


if __name__ == "__main__":
    main()
