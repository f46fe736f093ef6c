"""What `wf` writes: one JSON document on stdout per command (indent 2, sorted keys), and live
text for a person watching on stderr.

`--jq EXPR` filters a document through jq (the `jq` package, a binding to the real jq): each
result on its own line, strings raw (as `jq -r` and `gh --jq` print them), anything else as
JSON. The expression is compiled before the command runs, so a bad one changes nothing; error
documents are never filtered (a script sees the error)."""

from __future__ import annotations

import json
import sys
from typing import Any

import jq

from workflows_cli.client import EXIT_USAGE, CliError, error_object


def dumps(document: Any) -> str:
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False)


def emit(document: Any, stream=None) -> None:
    stream = stream or sys.stdout
    stream.write(dumps(document) + "\n")
    stream.flush()


def emit_text(text: str) -> None:
    """Live output for a person or agent watching; stdout keeps its one JSON document."""
    sys.stderr.write(text)
    sys.stderr.flush()


class Printer:
    """Prints documents, through the `--jq` program when there is one."""

    def __init__(self, expression: str | None = None):
        self.expression = expression
        self.program = None
        if expression is not None:
            try:
                self.program = jq.compile(expression)
            except ValueError as exc:
                raise CliError(EXIT_USAGE, error_object(
                    "jq_invalid", f"--jq {expression!r} is not a valid jq program: "
                                  f"{str(exc).strip()}")) from None

    def _results(self, document: Any) -> list[Any]:
        try:
            return self.program.input_value(document).all()
        except ValueError as exc:
            raise CliError(EXIT_USAGE, error_object(
                "jq_error", f"--jq {self.expression!r} failed on the document: "
                            f"{str(exc).strip()}")) from None

    def document(self, document: Any) -> None:
        """The command's one document (indented), or the jq results."""
        if self.program is None:
            emit(document)
            return
        self._write_results(document, compact=False)

    def line(self, document: Any) -> None:
        """One JSON line of a stream (`--json`), or the jq results for it."""
        if self.program is None:
            sys.stdout.write(json.dumps(document, sort_keys=True, ensure_ascii=False) + "\n")
            sys.stdout.flush()
            return
        self._write_results(document, compact=True)

    def _write_results(self, document: Any, *, compact: bool) -> None:
        for result in self._results(document):
            if isinstance(result, str):
                text = result
            elif compact:
                text = json.dumps(result, sort_keys=True, ensure_ascii=False)
            else:
                text = dumps(result)
            sys.stdout.write(text + "\n")
        sys.stdout.flush()


class Exit:
    """A command's document with an exit code of its own (`wf runs watch`: 1 when the run
    failed), instead of 0."""

    def __init__(self, document: Any, code: int):
        self.document = document
        self.code = code
