"""`wf resources get|download`: a resource's document, and its bytes streamed from the signed
URL with the SHA-256 checked."""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from workflows_cli.client import (
    EXIT_SERVER,
    EXIT_USAGE,
    Api,
    CliError,
    error_object,
    exit_code_for,
    seg,
)


def cmd_resources_get(api: Api, args: argparse.Namespace) -> Any:
    """The resource's JSON document; with -o FILE, also download it (as `download` does)."""
    document = api.get(f"/resources/{seg(args.ref)}")
    if args.output:
        document["path"] = _download(document, Path(args.output))
    return document


def cmd_resources_download(api: Api, args: argparse.Namespace) -> Any:
    document = api.get(f"/resources/{seg(args.ref)}")
    name = Path(document.get("name") or "").name or str(document.get("id") or "resource")
    document["path"] = _download(document, Path(args.output or name))
    return document


class _Progress:
    """A progress bar on stderr, drawn only when stderr is a terminal (never in pipes or logs,
    and never on stdout, which keeps its one JSON document)."""

    def __init__(self, total: int):
        self.total = max(int(total or 0), 0)
        self.done = 0
        self.enabled = sys.stderr.isatty()
        self.drawn_at = 0.0

    def advance(self, count: int) -> None:
        self.done += count
        now = time.monotonic()
        if self.enabled and (now - self.drawn_at > 0.1 or self.done >= self.total):
            self.drawn_at = now
            share = self.done / self.total if self.total else 1.0
            bar = "#" * int(share * 30)
            sys.stderr.write(f"\r[{bar:<30}] {share:6.1%} {self.done}/{self.total} bytes")
            sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write("\n")
            sys.stderr.flush()


def _download(document: dict[str, Any], target: Path) -> str:
    """Stream the resource's signed URL into `target` (through `target.part`, renamed when the
    SHA-256 matches; removed when it does not). Returns the absolute path."""
    partial = target.with_name(target.name + ".part")
    progress = _Progress(document.get("size") or 0)
    try:
        with httpx.stream("GET", document["url"], timeout=60.0) as response:
            if response.status_code >= 400:
                response.read()
                try:
                    error = response.json()["error"]
                except (ValueError, KeyError, TypeError):
                    error = error_object(f"http_{response.status_code}", response.text[:500])
                raise CliError(exit_code_for(response.status_code), error)
            digest = hashlib.sha256()
            with partial.open("wb") as handle:
                for chunk in response.iter_bytes(64 * 1024):
                    digest.update(chunk)
                    handle.write(chunk)
                    progress.advance(len(chunk))
    except httpx.HTTPError as exc:
        partial.unlink(missing_ok=True)
        raise CliError(EXIT_SERVER, error_object("network_error", f"download failed: {exc}")) \
            from None
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise CliError(EXIT_USAGE, error_object("usage", f"cannot write {target}: {exc}")) from None
    except CliError:
        partial.unlink(missing_ok=True)
        raise
    finally:
        progress.close()
    if digest.hexdigest() != document["sha256"]:
        partial.unlink(missing_ok=True)
        raise CliError(EXIT_SERVER, error_object(
            "checksum_mismatch", "the downloaded bytes do not match the resource's sha256",
            expected=document["sha256"], actual=digest.hexdigest()))
    partial.replace(target)
    return str(target.resolve())


def register(commands) -> None:
    group = commands.group("resources", "stored artifacts")
    sub = commands.command(group, "get", cmd_resources_get,
                           "a resource's document (res://… or its id); with -o, download it too")
    sub.add_argument("ref")
    sub.add_argument("-o", "--output", default=None)
    sub = commands.command(group, "download", cmd_resources_download,
                           "stream a resource to a file (default: its name), checking its "
                           "sha256")
    sub.add_argument("ref")
    sub.add_argument("-o", "--output", default=None)
