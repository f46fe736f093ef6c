"""Unified diffs as data for reviewers: what an agent's patch changed, file by file.

A value shown to a reviewer (an approval's `show:` value or instructions, an output in the step
panel) that is a unified diff — text in that form, or a `text/x-diff` resource — renders as a
diff (the `diff_html` filter of `wf_render`). Parsing is `unidiff`'s (a well-kept parser of the
format git, diff -u and GitHub write); this module only decides what counts as a diff and
bounds the work: a diff is untrusted text, so its size is capped before parsing and every line
is escaped by the template that shows it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from unidiff import PatchSet
from unidiff.errors import UnidiffParseError

# Content types a resource holding a patch is stored with.
DIFF_CONTENT_TYPES = frozenset({"text/x-diff", "text/x-patch", "text/diff"})
# Beyond this, a diff is shown as plain text (its resource stays whole for download).
MAX_DIFF_BYTES = 2 * 1024 * 1024
# A diff with more changed lines than this shows every file folded; open one to read it.
FOLD_ABOVE_LINES = 400

_HUNK = re.compile(r"^@@ -\d+(?:,\d+)? \+\d+(?:,\d+)? @@", re.MULTILINE)
_FILE_HEADER = re.compile(r"^(?:diff --git |--- \S)", re.MULTILINE)


@dataclass
class DiffLine:
    kind: str  # "add", "del", "ctx" or "note" (\ No newline at end of file)
    text: str
    old: int | None
    new: int | None


@dataclass
class DiffHunk:
    header: str
    lines: list[DiffLine] = field(default_factory=list)


@dataclass
class DiffFile:
    path: str
    source: str
    target: str
    status: str  # "added", "removed", "renamed", "modified" or "binary"
    added: int
    removed: int
    hunks: list[DiffHunk] = field(default_factory=list)


@dataclass
class Diff:
    files: list[DiffFile]
    added: int
    removed: int

    @property
    def folded(self) -> bool:
        """True when the diff is long enough that each file starts folded."""
        return self.added + self.removed > FOLD_ABOVE_LINES and len(self.files) > 1


def is_diff_content_type(content_type: str | None) -> bool:
    return (content_type or "").split(";", 1)[0].strip().lower() in DIFF_CONTENT_TYPES


def looks_like_diff(text: object) -> bool:
    """True for text in unified-diff form: a file header and at least one hunk header. Cheap
    enough to ask of every string a page shows (two anchored regex searches)."""
    return (isinstance(text, str) and "\n@@ " in text and len(text) <= MAX_DIFF_BYTES
            and bool(_FILE_HEADER.search(text)) and bool(_HUNK.search(text)))


def diff_parse(text: str) -> Diff | None:
    """The files, hunks and lines of a unified diff, or None when `text` is not one (or is
    larger than MAX_DIFF_BYTES). Never raises on malformed input."""
    if not isinstance(text, str) or len(text) > MAX_DIFF_BYTES:
        return None
    try:
        patch = PatchSet(text)
    except (UnidiffParseError, ValueError, IndexError, TypeError):
        return None
    files = [_file(patched) for patched in patch]
    if not files:
        return None
    return Diff(files=files, added=sum(f.added for f in files),
                removed=sum(f.removed for f in files))


def _file(patched) -> DiffFile:
    if patched.is_binary_file:
        status = "binary"
    elif patched.is_added_file:
        status = "added"
    elif patched.is_removed_file:
        status = "removed"
    elif patched.is_rename:
        status = "renamed"
    else:
        status = "modified"
    hunks = []
    for hunk in patched:
        lines = []
        for line in hunk:
            if line.is_added:
                kind = "add"
            elif line.is_removed:
                kind = "del"
            elif line.line_type == "\\":
                kind = "note"
            else:
                kind = "ctx"
            lines.append(DiffLine(kind=kind, text=line.value.rstrip("\n").rstrip("\r"),
                                  old=line.source_line_no, new=line.target_line_no))
        header = (f"@@ -{hunk.source_start},{hunk.source_length} "
                  f"+{hunk.target_start},{hunk.target_length} @@ {hunk.section_header}").rstrip()
        hunks.append(DiffHunk(header=header, lines=lines))
    return DiffFile(path=patched.path, source=patched.source_file, target=patched.target_file,
                    status=status, added=patched.added, removed=patched.removed, hunks=hunks)
