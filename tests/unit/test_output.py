"""The reporter (text and JSON), the redaction filter, and the logging set-up."""

from __future__ import annotations

import io
import json
import logging
from typing import Any

import pytest

from dbtasks.errors import DriftError, RefusedError
from dbtasks.output import RedactFilter, Reporter, configure_logging, remove_logging


class Done:
    def as_dict(self) -> dict[str, Any]:
        return {"count": 2, "items": ["a", "b"]}

    def text(self) -> list[str]:
        return ["did 2 things", "  a", "  b"]


CONTEXT = {"url": "postgresql+psycopg://app:***@db/app", "database": "app", "runner": "local"}


def _reporter(fmt: str) -> tuple[Reporter, io.StringIO, io.StringIO]:
    out, err = io.StringIO(), io.StringIO()
    return Reporter(fmt, out=out, err=err), out, err


def test_text_success() -> None:
    reporter, out, err = _reporter("text")
    reporter.success("thing", Done(), CONTEXT)
    assert out.getvalue() == "did 2 things\n  a\n  b\n"
    assert err.getvalue() == ""


def test_json_success_is_one_object() -> None:
    reporter, out, err = _reporter("json")
    reporter.success("thing", Done(), CONTEXT)
    assert json.loads(out.getvalue()) == {
        "task": "thing",
        "ok": True,
        **CONTEXT,
        "count": 2,
        "items": ["a", "b"],
    }
    assert err.getvalue() == ""


def test_text_failure_is_one_line_then_details() -> None:
    reporter, out, err = _reporter("text")
    error = RefusedError("refused: 2 sessions", lines=["  - pid 1", "  - pid 2"])
    reporter.failure("delete-db", error, CONTEXT)
    assert out.getvalue() == ""
    assert err.getvalue() == "dbtasks delete-db: refused: 2 sessions\n  - pid 1\n  - pid 2\n"


def test_json_failure() -> None:
    reporter, out, err = _reporter("json")
    error = DriftError("schema drift", details={"differences": [{"kind": "add_table"}]})
    reporter.failure("verify", error, CONTEXT)
    payload = json.loads(out.getvalue())
    assert payload == {
        "task": "verify",
        "ok": False,
        **CONTEXT,
        "error": {
            "type": "DriftError",
            "message": "schema drift",
            "exit_code": 3,
            "differences": [{"kind": "add_table"}],
        },
    }
    # The one line on stderr in JSON mode too; the detail lines only in the JSON.
    assert err.getvalue() == "dbtasks verify: schema drift\n"


def test_json_renders_what_json_cannot() -> None:
    class Odd:
        def as_dict(self) -> dict[str, Any]:
            from pathlib import Path

            return {"path": Path("/srv/x")}

        def text(self) -> list[str]:
            return []

    reporter, out, _ = _reporter("json")
    reporter.success("odd", Odd(), {})
    assert json.loads(out.getvalue())["path"] == "/srv/x"


# --------------------------------------------------------------------------- redaction


def _record(msg: str, *args: object, exc: bool = False) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise ValueError("bad password hunter2 in here")  # noqa: TRY301  # a real traceback
        except ValueError:
            import sys

            exc_info = sys.exc_info()
    return logging.LogRecord("dbtasks.x", logging.INFO, __file__, 1, msg, args, exc_info)


def test_redact_filter_replaces_secrets_in_message_and_arguments() -> None:
    record = _record("connecting with %s to %s", "hunter2", "db")
    assert RedactFilter(("hunter2",)).filter(record)
    assert record.getMessage() == "connecting with *** to db"


def test_redact_filter_covers_tracebacks() -> None:
    record = _record("failed", exc=True)
    RedactFilter(("hunter2",)).filter(record)
    message = record.getMessage()
    assert "Traceback" in message
    assert "ValueError: bad password *** in here" in message
    assert "hunter2" not in logging.Formatter().format(record)


def test_redact_filter_without_secrets_leaves_records_alone() -> None:
    record = _record("value %d", 3)
    assert RedactFilter(("",)).filter(record)
    assert record.args == (3,)


# --------------------------------------------------------------------------- logging set-up

NAMES = ("dbtasks", "alembic", "sqlalchemy.engine")


@pytest.fixture
def stream() -> io.StringIO:
    return io.StringIO()


def test_levels_and_restoration(stream: io.StringIO) -> None:
    before = {n: (logging.getLogger(n).level, logging.getLogger(n).propagate) for n in NAMES}
    handler = configure_logging(verbose=False, quiet=False, secrets=("hunter2",), stream=stream)
    try:
        assert logging.getLogger("dbtasks").level == logging.INFO
        assert logging.getLogger("alembic").level == logging.WARNING
        assert logging.getLogger("sqlalchemy.engine").level == logging.WARNING
        logging.getLogger("dbtasks.database").info("creating %s with hunter2", "app")
        logging.getLogger("dbtasks.database").debug("not shown")
    finally:
        remove_logging(handler)
    assert stream.getvalue() == "creating app with ***\n"
    after = {n: (logging.getLogger(n).level, logging.getLogger(n).propagate) for n in NAMES}
    assert after == before
    assert all(handler not in logging.getLogger(n).handlers for n in NAMES)


def test_verbose_and_quiet(stream: io.StringIO) -> None:
    handler = configure_logging(verbose=True, quiet=False, secrets=(), stream=stream)
    try:
        assert logging.getLogger("dbtasks").level == logging.DEBUG
        assert logging.getLogger("alembic").level == logging.DEBUG
        assert logging.getLogger("sqlalchemy.engine").level == logging.INFO
    finally:
        remove_logging(handler)
    handler = configure_logging(verbose=False, quiet=True, secrets=(), stream=stream)
    try:
        assert logging.getLogger("dbtasks").level == logging.WARNING
        logging.getLogger("dbtasks").info("hidden")
        logging.getLogger("dbtasks").warning("shown")
    finally:
        remove_logging(handler)
    assert stream.getvalue() == "shown\n"
