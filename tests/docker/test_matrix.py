"""``db_matrix`` stopped midway leaves no database container behind: Ctrl-C or ``kill -9``.

Each test starts a real matrix run (pytest with ``-p tests.containers``, as the nox session
does) against the PostgreSQL image of the compose suite, waits until the server is up and
tests are running, stops it, and then asks the Docker engine for the run's containers.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.containers import LABEL
from tests.docker.project import engine_problem, images

REPO = Path(__file__).resolve().parents[2]


def _wait_for(what: str, check: Callable[[], bool], timeout: float, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.3)
    tail = log.read_text(errors="replace")[-3000:]
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}; run log:\n{tail}")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGKILL], ids=["ctrl-c", "kill-9"])
def test_a_stopped_matrix_run_leaves_no_container(signum: int, tmp_path: Path) -> None:
    reason = engine_problem()
    if reason is not None:
        if os.environ.get("DBTASKS_FORBID_SKIPS") == "1":
            pytest.fail(f"needs a Docker engine: {reason}")
        pytest.skip(f"needs a Docker engine: {reason}")
    import docker

    client = docker.from_env()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DBTASKS_")}
    argv = [
        sys.executable, "-m", "pytest", "tests/integration", "-n", "0",
        "-p", "no:cacheprovider", "-p", "no:benchmark", "-p", "tests.containers",
        f"--db-image={images()['POSTGRES_IMAGE']}", "--db-engine=postgresql",
        f"--basetemp={tmp_path / 'run'}",  # its own: pytest prunes old ones in the shared one
    ]  # fmt: skip
    log = tmp_path / "run.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            argv, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    ours = {"label": f"{LABEL}={proc.pid}"}
    try:
        # Midway: the server answered (the header says so) and tests have begun.
        _wait_for("the server", lambda: b"ready in" in log.read_bytes(), 120, log)
        _wait_for("the first test", lambda: b"\ntests/integration/" in log.read_bytes(), 60, log)
        assert proc.poll() is None, log.read_text()
        assert len(client.containers.list(filters=ours)) == 1
        if signum == signal.SIGINT:
            # What a terminal does on Ctrl-C: the whole process group gets it. A user whose
            # first Ctrl-C lands where pytest loses it (say, inside its own fixture set-up)
            # presses again.
            os.killpg(proc.pid, signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=20)
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGINT)
        else:
            proc.send_signal(signum)  # that process alone, with no chance to clean up
        _wait_for("the run to end", lambda: proc.poll() is not None, 60, log)
        # Ctrl-C: pytest's own teardown removes it; kill -9: the run's reaper does.
        gone = lambda: not client.containers.list(all=True, filters=ours)  # noqa: E731
        _wait_for("the container to go", gone, 60, log)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for container in client.containers.list(all=True, filters=ours):
            container.remove(force=True)
        client.close()
