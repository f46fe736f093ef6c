"""Replacing secret values by `***` before anything is stored.

Contract for the engine (one attempt of a step):

1. Build a `LogRedactor` from the secrets of every connection the step uses
   (`selectors.secret_values(secret)` for each secret dict). Secrets decrypted later in the
   attempt are added with `add()`.
2. Every log chunk goes through `redact_stream(text)` and only what it returns is stored. It may
   return less than it was given (even ""): it holds back a tail that could be the start of a
   secret continuing in the next chunk, so a secret split across chunks never reaches storage.
   Use one LogRedactor per stream (stdout, stderr): the held tail belongs to one stream.
3. At the end of the attempt (success, failure, cancel, timeout: use `finally`) call `flush()`
   and store what it returns as the last chunk.
4. Outputs, errors (message and traceback), the attempt's input and event data go through
   `redact(value)` before they are stored.

What is redacted: every occurrence of every secret, longest first, so a secret containing
another is replaced whole. A multi-line secret (a PEM private key) is also redacted line by line,
since a program may print one line of it. Streaming and whole-text redaction agree: the
concatenation of `redact_stream` outputs and `flush()` equals `redact_text` of the whole text.

Not redacted: encodings of secrets (base64, URL-encoding, JSON-escaped text inside a string),
and values shorter than `MIN_SECRET_LENGTH` when they come from `selectors.secret_values` (a
one-character "secret" would turn every log into asterisks).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

__all__ = ["MASK", "MIN_SECRET_LENGTH", "LogRedactor", "Redactor"]

MASK = "***"
# Shorter values are not treated as secrets when they are collected from a secret dict.
MIN_SECRET_LENGTH = 4


def _expand(secrets: Iterable[str]) -> set[str]:
    """The secrets plus each line of the multi-line ones (lines of MIN_SECRET_LENGTH or more)."""
    expanded: set[str] = set()
    for secret in secrets:
        if not isinstance(secret, str) or not secret:
            continue
        expanded.add(secret)
        if "\n" in secret or "\r" in secret:
            for line in secret.splitlines():
                for candidate in (line, line.strip()):
                    if len(candidate.strip()) >= MIN_SECRET_LENGTH:
                        expanded.add(candidate)
    return expanded


class Redactor:
    """Replaces every occurrence of the given secrets by `***` in strings and in nested
    dict/list/tuple values. Empty strings are ignored; nothing else is filtered, so pass
    `selectors.secret_values(...)`, which drops values too short to be secrets."""

    def __init__(self, secrets: Iterable[str] = ()):
        self._secrets: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self._longest = 0
        self._first_chars: frozenset[str] = frozenset()
        self.add(secrets)

    @property
    def secrets(self) -> list[str]:
        """The values redacted, longest first (lines of multi-line secrets included)."""
        return sorted(self._secrets, key=lambda s: (-len(s), s))

    def add(self, secrets: Iterable[str]) -> None:
        """Also redact these values from now on."""
        new = _expand(secrets) - self._secrets
        if not new:
            return
        self._secrets |= new
        self._first_chars = frozenset(s[0] for s in self._secrets)
        ordered = self.secrets
        # Alternatives are tried in order at each position: longest first wins.
        self._pattern = re.compile("|".join(re.escape(s) for s in ordered))
        self._longest = len(ordered[0])

    def redact_text(self, text: str) -> str:
        if self._pattern is None or not text:
            return text
        return self._pattern.sub(MASK, text)

    def redact(self, value: Any) -> Any:
        """`value` with every secret replaced, walking str, dict (keys and values), list and
        tuple; other values (numbers, None, bools) are returned as they are."""
        if self._pattern is None:
            return value
        return self._walk(value)

    def _walk(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.redact_text(value)
        if isinstance(value, dict):
            return {self._walk(k): self._walk(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self._walk(v) for v in value]
        if isinstance(value, tuple):
            return tuple(self._walk(v) for v in value)
        return value

    def log_redactor(self) -> LogRedactor:
        """A streaming redactor for one log stream, with the same secrets."""
        return LogRedactor(self._secrets)


class LogRedactor(Redactor):
    """A Redactor that also redacts a stream of log chunks (see the module docstring).

    It holds back at most `max(len(secret)) - 1` characters: the shortest tail of what it has
    seen that could be the start of a secret, and only as long as it could be."""

    def __init__(self, secrets: Iterable[str] = ()):
        super().__init__(secrets)
        self._pending = ""

    @property
    def pending(self) -> int:
        """How many characters are held back, waiting for the next chunk or flush()."""
        return len(self._pending)

    def redact_stream(self, text: str) -> str:
        """The redacted part of (held tail + `text`) that no later chunk can change."""
        buffer = self._pending + text
        if self._pattern is None:
            self._pending = ""
            return buffer
        hold = self._hold_start(buffer)
        out: list[str] = []
        position = 0
        for match in self._pattern.finditer(buffer):
            # A match starting before `hold` is final: whatever follows cannot make a longer
            # secret match there (else that position would be part of the held tail).
            if match.start() >= hold:
                break
            out.append(buffer[position : match.start()])
            out.append(MASK)
            position = match.end()
        cut = max(hold, position)
        out.append(buffer[position:cut])
        self._pending = buffer[cut:]
        return "".join(out)

    def flush(self) -> str:
        """The held tail, redacted; call once at the end of the attempt."""
        rest, self._pending = self._pending, ""
        return self.redact_text(rest)

    def _hold_start(self, buffer: str) -> int:
        """The smallest index i such that buffer[i:] is a proper prefix of some secret, or
        len(buffer) when no tail could start a secret."""
        size = len(buffer)
        first_chars = self._first_chars
        for i in range(max(0, size - self._longest + 1), size):
            if buffer[i] not in first_chars:
                continue
            tail = buffer[i:]
            for secret in self._secrets:
                if len(secret) > len(tail) and secret.startswith(tail):
                    return i
        return size
