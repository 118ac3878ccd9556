"""Start-up cost: ``inv --list``, and ``dbtasks status`` against ``alembic current``.

Runs the commands interleaved, several times, in one run, and prints medians and ratios, so
the comparison holds on a busy machine. Targets: ``inv --list`` under 0.4 s; ``dbtasks status``
within 1.3x of ``alembic current`` on the same database.

    python benchmarks/bench_startup.py [--runs 15] [--url postgresql://...]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def timed(argv: list[str], env: dict[str, str], cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run(argv, cwd=cwd, env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument(
        "--url",
        action="append",
        default=[],
        help="also measure against this database URL (repeatable)",
    )
    args = parser.parse_args()
    inv = shutil.which("inv")
    alembic = shutil.which("alembic")
    if not inv or not alembic:
        sys.exit("needs inv and alembic on PATH (pip install -e '.[all]')")
    work = Path(tempfile.mkdtemp(prefix="dbtasks-bench-"))
    urls = [f"sqlite:///{work / 'bench.db'}", *args.url]
    rows = []
    try:
        for url in urls:
            env = {**os.environ, "DATABASE_URL": url}
            subprocess.run(
                [sys.executable, "-m", "dbtasks", "init", "-q"],
                cwd=REPO,
                env=env,
                check=True,
                capture_output=True,
            )
            commands = {
                "inv --list": [inv, "--list"],
                "dbtasks status": [sys.executable, "-m", "dbtasks", "status"],
                "alembic current": [alembic, "current"],
            }
            samples: dict[str, list[float]] = {name: [] for name in commands}
            for _ in range(args.runs):  # interleaved: noise hits every command alike
                for name, argv in commands.items():
                    samples[name].append(timed(argv, env, REPO))
            med = {name: statistics.median(values) for name, values in samples.items()}
            backend = url.split(":", 1)[0]
            rows.append((backend, med))
            if not url.startswith("sqlite"):
                subprocess.run(
                    [sys.executable, "-m", "dbtasks", "delete-db", "--yes", "-q"],
                    cwd=REPO,
                    env=env,
                    check=False,
                    capture_output=True,
                )
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print(f"median of {args.runs} interleaved runs, seconds")
    print(
        f"{'database':<12} {'inv --list':>11} {'dbtasks status':>15} {'alembic current':>16} "
        f"{'status/current':>15}"
    )
    for backend, med in rows:
        ratio = med["dbtasks status"] / med["alembic current"]
        print(
            f"{backend:<12} {med['inv --list']:>11.3f} {med['dbtasks status']:>15.3f} "
            f"{med['alembic current']:>16.3f} {ratio:>14.2f}x"
        )
    print("targets: inv --list < 0.400 s; status/current <= 1.30x")


if __name__ == "__main__":
    main()
