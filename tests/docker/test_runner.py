"""The compose runner's contract, in the real containers: the one the local runner keeps.

argv lists, checked exit codes quoting the last stderr line, streams both ways, a command
killed when its caller gives up, 0600 secret files owned by the commands' user.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from sqlalchemy.engine import make_url

from dbtasks.errors import CommandError
from dbtasks.runners.base import Runner
from dbtasks.runners.compose import ComposeRunner
from tests.docker.project import ComposeProject

pytestmark = pytest.mark.docker
PY = "python3"


@pytest.fixture(scope="module")
def runner(compose_project: ComposeProject) -> Iterator[ComposeRunner]:
    """The app service's container (it has Python, and runs as an unprivileged user)."""
    found = ComposeRunner.for_service(compose_project.name, "app")
    yield found
    found.project.api.close()


def _running(runner: ComposeRunner, marker: str) -> bool:
    """Whether a process whose command line holds ``marker`` runs in the container."""
    code = (
        "import os, sys\n"
        "for pid in filter(str.isdigit, os.listdir('/proc')):\n"
        "    try: line = open(f'/proc/{pid}/cmdline', 'rb').read()\n"
        "    except OSError: continue\n"
        "    if sys.argv[1].encode() in line and pid != str(os.getpid()): sys.exit(0)\n"
        "sys.exit(1)\n"
    )
    return runner.run([PY, "-c", code, marker], check=False).exit_code == 0


def test_is_a_runner(runner: ComposeRunner) -> None:
    assert isinstance(runner, Runner)
    assert runner.name == "compose"
    assert runner.which("sh") is not None
    assert runner.which("no-such-tool-dbtasks") is None


def test_run_captures_and_adds_env(runner: ComposeRunner) -> None:
    done = runner.run(
        [PY, "-c", "import os,sys; sys.stdout.write(os.environ['X'] + sys.stdin.read())"],
        env={"X": "a"},
        input=b"b",
    )
    assert (done.exit_code, done.text) == (0, "ab")
    echo = "import sys; data = sys.stdin.buffer.read(); sys.stdout.buffer.write(data * 2)"
    assert runner.run([PY, "-c", echo], input=b"z" * 100_000).stdout == b"z" * 200_000


def test_run_failure_quotes_last_stderr_line(runner: ComposeRunner) -> None:
    code = "import sys; sys.stderr.write('first\\nthe reason\\n\\n'); sys.exit(3)"
    with pytest.raises(CommandError, match=r"^python3 failed \(exit 3\): the reason$"):
        runner.run([PY, "-c", code])
    assert runner.run([PY, "-c", code], check=False).exit_code == 3
    with pytest.raises(CommandError, match=r"exit 3\): the reason$"):
        runner.run([PY, "-c", code], input=b"ignored")


def test_missing_tool_is_a_command_error(runner: ComposeRunner) -> None:
    with pytest.raises(CommandError, match=r"no-such-tool-dbtasks.*exit 12[67]"):
        runner.run(["no-such-tool-dbtasks"])
    with (
        pytest.raises(CommandError, match=r"no-such-tool-dbtasks.*exit 127"),
        runner.reading(["no-such-tool-dbtasks"]) as stream,
    ):
        stream.read()


def test_reading_streams_and_checks(runner: ComposeRunner) -> None:
    code = "import sys; sys.stdout.buffer.write(b'x' * 3_000_000); sys.stderr.write('e' * 200000)"
    with runner.reading([PY, "-c", code]) as stream:
        total = 0
        while chunk := stream.read(65536):
            assert len(chunk) == 65536 or total + len(chunk) == 3_000_000
            total += len(chunk)
    assert total == 3_000_000
    with (
        pytest.raises(CommandError, match=r"exit 2\): boom$"),
        runner.reading([PY, "-c", "import sys; print('boom', file=sys.stderr); sys.exit(2)"]) as s,
    ):
        s.read()


def test_reading_kills_the_command_when_the_block_fails(runner: ComposeRunner) -> None:
    marker = f"dbtasks-marker-{time.monotonic_ns()}"

    def give_up() -> None:
        with runner.reading([PY, "-c", "import time; time.sleep(60)", marker]):
            deadline = time.monotonic() + 10
            while not _running(runner, marker) and time.monotonic() < deadline:
                time.sleep(0.1)
            _ = 1 / 0

    with pytest.raises(ZeroDivisionError):
        give_up()
    deadline = time.monotonic() + 10
    while _running(runner, marker):
        assert time.monotonic() < deadline, "the command still runs"
        time.sleep(0.1)


def test_a_reader_that_stops_early_fails(runner: ComposeRunner) -> None:
    code = "import sys; sys.stdout.buffer.write(b'y' * 5_000_000)"
    with (
        pytest.raises(CommandError, match="not read to the end"),
        runner.reading([PY, "-c", code]) as stream,
    ):
        stream.read(10)


def test_writing_feeds_stdin(runner: ComposeRunner) -> None:
    target = f"/tmp/dbtasks-in-{time.monotonic_ns()}"  # noqa: S108  # in the container
    code = f"import sys; open({target!r}, 'wb').write(sys.stdin.buffer.read())"
    with runner.writing([PY, "-c", code]) as stream:
        for _ in range(10):
            stream.write(b"y" * 1_000_000)
    assert runner.run(["wc", "-c", target]).text.split()[0] == "10000000"
    runner.run(["rm", "-f", target])


def test_writing_to_a_dead_command_raises_its_error(runner: ComposeRunner) -> None:
    code = "import sys; print('no thanks', file=sys.stderr); sys.exit(4)"

    def feed() -> None:
        with runner.writing([PY, "-c", code]) as stream:
            for _ in range(100):
                stream.write(b"z" * 1_000_000)

    with pytest.raises(CommandError, match=r"exit 4\): no thanks$"):
        feed()


def test_secret_file_is_private_owned_and_removed(runner: ComposeRunner) -> None:
    with runner.secret_file(b"s3cret\n") as name:
        assert runner.run(["cat", name]).stdout == b"s3cret\n"  # readable by the commands' user
        mode, owner = runner.run(["stat", "-c", "%a %U", name]).text.split()
        assert mode == "600"
        assert owner == runner.run(["id", "-un"]).text.strip()
        assert runner.run(["stat", "-c", "%a", name.rsplit("/", 1)[0]]).text.strip() == "700"
    assert runner.run(["test", "-e", name], check=False).exit_code == 1


def test_tool_url_is_the_database_as_its_container_sees_it(
    compose_project: ComposeProject,
) -> None:
    port = compose_project.ports["postgresql"]
    here = make_url(f"postgresql+psycopg://app:pw@127.0.0.1:{port}/app")
    db = ComposeRunner.for_service(compose_project.name, "postgres")
    app = ComposeRunner.for_service(compose_project.name, "app")
    try:
        assert (
            db.tool_url(here)
            .render_as_string(hide_password=False)
            .endswith("app:pw@127.0.0.1:5432/app")
        )
        assert (
            app.tool_url(here)
            .render_as_string(hide_password=False)
            .endswith("app:pw@postgres:5432/app")
        )
        elsewhere = make_url("postgresql+psycopg://app:pw@db.example:5432/app")
        assert db.tool_url(elsewhere) == elsewhere
    finally:
        db.project.api.close()
        app.project.api.close()


def test_relay_hands_output_over_as_it_comes(runner: ComposeRunner) -> None:
    code = (
        "import sys, time\n"
        "print('first', flush=True); print('log', file=sys.stderr, flush=True)\n"
        "time.sleep(2); print('second', flush=True); sys.exit(3)\n"
    )
    began = time.monotonic()
    seen: list[tuple[float, bytes]] = []
    code_seen = runner.relay(
        [PY, "-c", code],
        stdout=lambda chunk: seen.append((time.monotonic() - began, chunk)),
        stderr=lambda chunk: seen.append((time.monotonic() - began, b"err:" + chunk)),
    )
    ended = time.monotonic() - began
    assert code_seen == 3  # the exit code, not an exception: the caller decides
    out = b"".join(chunk for _, chunk in seen if not chunk.startswith(b"err:"))
    assert out == b"first\nsecond\n"
    # Two pipes, so no order between them; an unbuffered writer may split a line in chunks.
    err = b"".join(chunk.removeprefix(b"err:") for _, chunk in seen if chunk.startswith(b"err:"))
    assert err == b"log\n"
    first_at = next(at for at, chunk in seen if chunk.startswith(b"first"))
    assert ended - first_at > 1.5, seen  # "first" arrived while the command still ran
