"""The ``dbtasks`` console script: the same collection as ``inv db.*``, at the top level."""

from __future__ import annotations

from pathlib import Path

from invoke.exceptions import Exit, ParseError
from invoke.program import Program

from dbtasks import __version__
from dbtasks.tasks import ns


class DbtasksProgram(Program):
    """Invoke's ``Program`` that reads the project's ``invoke.yaml`` and exits 2 on bad flags.

    ``inv`` loads ``invoke.yaml`` from beside the ``tasks.py`` it found; a program with a
    bundled namespace searches for no ``tasks.py`` and so loads no project file. dbtasks takes
    the working directory as the project folder (as it does for ``alembic.ini`` and ``.env``),
    so ``db.url`` in ``./invoke.yaml`` means the same to ``dbtasks`` as to ``inv``.
    """

    def parse_collection(self) -> None:
        super().parse_collection()
        self.config.set_project_location(str(Path.cwd()))
        self.config.load_project()

    # Invoke exits 1 on a parse error; dbtasks documents 2 for usage errors (1 is "failed").
    def parse_core(self, argv: list[str] | None) -> None:
        try:
            super().parse_core(argv)
        except ParseError as exc:
            raise Exit(f"dbtasks: {exc}", code=2) from exc

    def parse_tasks(self) -> None:
        try:
            super().parse_tasks()
        except ParseError as exc:
            raise Exit(f"dbtasks: {exc}", code=2) from exc


program = DbtasksProgram(namespace=ns, version=__version__, name="dbtasks", binary="dbtasks")


def main() -> None:
    program.run()
