"""Hostile values every door is fed (issue 25's probe): the API tests use them, and so do the
tests of the admin's run form, the approval admin URLs and the signed download view, so each
door refuses the same inputs with a 4xx and none answers 500.

- `JSON_TEXTS`: request bodies' JSON values that parse to something no database column can
  store, or that do not parse at all (non-finite numbers, integers past Python's 4,300-digit
  conversion limit, nesting that exhausts the recursion limit).
- `UNSTORABLE_STRINGS`: strings PostgreSQL refuses (NUL) or UTF-8 cannot encode (a lone
  surrogate), as Python values.
- `PATH_IDS`: what a URL segment that should be a number may hold instead (percent-encoded
  when it goes in a URL: `quote(value)`).
- `RANGE_HEADERS`: `Range` values whose positions no file size could reach (416);
  `NOT_BYTE_RANGES`: values that are no byte range at all (ignored: the whole content).
"""

from __future__ import annotations

LONG_DIGITS = "9" * 5000
RANGE_DIGITS = "9" * 4400
DEEP_NESTING = "[" * 100_000

NON_FINITE_NUMBERS = ["1e400", "-1e400", "Infinity", "NaN"]
JSON_TEXTS = [*NON_FINITE_NUMBERS, LONG_DIGITS, "-" + LONG_DIGITS, DEEP_NESTING,
              DEEP_NESTING + "]" * 100_000]

UNSTORABLE_STRINGS = ["\ud800", "a\x00b", "\udfff tail"]

PATH_IDS = ["²", "٣", "１", LONG_DIGITS, str(2**63), str(2**64), "-1", "0", "1.5", "1e3",
            " 1", "0x1", "nan"]

RANGE_HEADERS = [f"bytes=0-{RANGE_DIGITS}", f"bytes={RANGE_DIGITS}-", f"bytes=-{RANGE_DIGITS}"]
NOT_BYTE_RANGES = ["bytes=²-", "bytes=0-²", "bytes=-٣", "bytes=1-0x2", "bytes=１-2"]
