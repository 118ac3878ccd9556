"""The compose runner's plumbing without an engine: exec frames, the pid line, flags rebuilt.

The Engine API frames an exec's output as an 8-byte header (stream, 0, 0, 0, big-endian
size) and the data; a header or the data may arrive split across reads.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator

import pytest

from dbtasks.errors import CommandError
from dbtasks.runners.compose_streams import ExecInput, ExecOutput, FrameReader, StderrTail
from dbtasks.tasks.common import _cli_args


def frame(stream: int, data: bytes) -> bytes:
    return struct.pack(">BxxxL", stream, len(data)) + data


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    """Our end of an exec's socket, and the engine's."""
    ours, theirs = socket.socketpair()
    yield ours, theirs
    ours.close()
    theirs.close()


def test_frame_reader_splits_streams_across_any_read_boundary(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    ours, theirs = pair
    wire = (
        frame(2, b"4242\nfirst err")
        + frame(1, b"out" * 50_000)
        + frame(2, b"\nthe reason\n")
        + frame(1, b"")
    )
    reader = FrameReader(ours, StderrTail(wrapped=True))
    reader.start()
    for i in range(0, len(wire), 7):  # a header split in two, data split everywhere
        theirs.sendall(wire[i : i + 7])
    theirs.close()
    assert reader.stdout() == (b"out" * 50_000)[-65536:]
    assert reader.errors.pid == "4242"
    assert reader.errors.tail() == b"first err\nthe reason\n"
    assert reader.tail().endswith(b"outout\nthe reason\n")  # in the order written


def test_a_truncated_frame_ends_the_output(pair: tuple[socket.socket, socket.socket]) -> None:
    ours, theirs = pair
    reader = FrameReader(ours, StderrTail(wrapped=False))
    reader.start()
    theirs.sendall(frame(2, b"complete\n") + struct.pack(">BxxxL", 2, 100) + b"half")
    theirs.close()
    assert reader.tail() == b"complete\nhalf"
    assert reader.errors.got_pid.is_set()  # nobody waits for a pid that will not come


def test_exec_output_reads_exact_sizes_and_strips_the_pid() -> None:
    frames: Iterator[tuple[bytes | None, bytes | None]] = iter(
        [(None, b"17"), (None, b"\nwarn"), (b"abc", None), (b"defgh", None), (None, b"!\n")]
    )
    errors = StderrTail(wrapped=True)
    output = ExecOutput(frames, errors)
    assert output.read(4) == b"abcd"
    assert errors.pid == "17"
    assert not output.at_end()
    assert output.read() == b"efgh"
    assert output.read(10) == b""
    assert output.at_end()
    assert errors.tail() == b"warn!\n"


def test_exec_input_fails_at_once_when_the_command_has_ended(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    ours, theirs = pair
    reader = FrameReader(ours, StderrTail(wrapped=False))
    reader.start()
    theirs.close()  # the command ended: its output is over
    reader.join(5)
    stdin = ExecInput(ours, reader, lambda: CommandError("tool failed (exit 4): no thanks"))
    with pytest.raises(CommandError, match="no thanks"):
        stdin.write(b"data")


def test_flags_are_rebuilt_as_typed_defaults_left_out() -> None:
    def migrate(
        settings: object,
        target_version: str | None = None,
        dry_run: bool = False,
        force: bool = False,
        exclude: list[str] | None = None,
        message: str = "",
    ) -> None: ...

    args = _cli_args(
        migrate,  # type: ignore[arg-type]  # only its signature is read
        {
            "target_version": "a1c3 e5",
            "dry_run": True,
            "force": False,
            "exclude": ["a", "b"],
            "message": "",
        },
    )
    assert args == ["--target-version=a1c3 e5", "--dry-run", "--exclude=a", "--exclude=b"]
