"""What `wf` writes: one JSON document on stdout per command (indent 2, sorted keys), and live
text for a person watching on stderr."""

from __future__ import annotations

import json
import sys
from typing import Any


def emit(document: Any, stream=None) -> None:
    stream = stream or sys.stdout
    stream.write(json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
    stream.flush()


def emit_text(text: str) -> None:
    """Live output for a person or agent watching; stdout keeps its one JSON document."""
    sys.stderr.write(text)
    sys.stderr.flush()

