"""Progress: periodic lines without a terminal, a rich bar with one, nothing when quiet."""

from __future__ import annotations

import io

from dbtasks.backup.progress import LineProgress, NoProgress, RichProgress


def test_lines_show_bytes_rate_and_eta() -> None:
    out = io.StringIO()
    progress = LineProgress(out, interval=0.0)
    progress.start("backup", 4 * 1024 * 1024)
    progress.advance(1024 * 1024)
    progress.finish()
    line = out.getvalue().splitlines()[0]
    assert line.startswith("backup: 1.0 MB of ~4.0 MB")
    assert "/s" in line
    assert "ETA" in line


def test_lines_are_periodic() -> None:
    out = io.StringIO()
    progress = LineProgress(out, interval=3600)
    progress.start("backup", None)
    for _ in range(100):
        progress.advance(1000)
    progress.finish()
    assert out.getvalue() == ""


def test_rich_bar_and_silence() -> None:
    out = io.StringIO()
    bar = RichProgress(out)
    bar.start("restoring", 1000)
    bar.advance(600)
    bar.advance(600)  # more than estimated: the bar grows instead of overflowing
    bar.finish()
    assert "restoring" in out.getvalue()
    quiet = NoProgress()
    quiet.start("x", 1)
    quiet.advance(1)
    quiet.finish()
