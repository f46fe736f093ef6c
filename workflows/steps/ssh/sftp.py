"""Artifacts over SFTP, on the step's own transport: `upload` before the command, `download`
after it.

upload: [{from: "res://…" | text, to: /remote/path, mode?: 0o644 | "0644"}]. A `from` that is a
res:// ref is copied from the resource (read from storage in pieces); anything else is written
as UTF-8 text.

download: [{path: /remote/file, name?: key, optional?: bool}]. Each file is streamed into
storage piece by piece (constant memory; size and SHA-256 computed on the way) and becomes a
res:// resource; the step output carries `files: {name: ref}` (name defaults to the file's base
name). A missing file fails the attempt naming the path unless `optional`; a directory, a special
file or a file larger than WF_SFTP_MAX_BYTES (default 2 GiB) fails with the reason.
"""

from __future__ import annotations

import mimetypes
import posixpath
import re
import stat
from collections.abc import Callable
from typing import Any

import paramiko
from django.conf import settings
from django.db import connection as db_connection

from resources.selectors import resource_from_uri
from workflows.errors import NotFound
from workflows.steps.base import Problem, StepFailed, problem

DEFAULT_MAX_BYTES = 2 * 1024**3
WINDOW_BYTES = 1024 * 1024  # read-ahead per readv() call: bounded memory, pipelined requests
REQUEST_BYTES = 32 * 1024
FILE_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")
RES_PREFIX = "res://"


def max_bytes() -> int:
    return int(getattr(settings, "WF_SFTP_MAX_BYTES", DEFAULT_MAX_BYTES))


def parse_mode(value: Any) -> int | None:
    """An octal permission mode from 0o755 (an int, as YAML 1.1 reads 0755) or "0755"."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError
    if isinstance(value, int):
        mode = value
    elif isinstance(value, str) and re.fullmatch(r"0?[0-7]{3,4}", value.strip()):
        mode = int(value.strip(), 8)
    else:
        raise ValueError
    if not 0 <= mode <= 0o7777:
        raise ValueError
    return mode


def download_name(item: dict[str, Any]) -> str:
    return item.get("name") or posixpath.basename(str(item.get("path", "")).rstrip("/"))


def validate_transfers(step: dict[str, Any], path: str) -> list[Problem]:
    problems: list[Problem] = []
    uploads = step.get("upload")
    if uploads is not None:
        if not isinstance(uploads, list):
            problems.append(problem(f"{path}.upload", "must be a list of {from, to, mode?}"))
        else:
            for i, item in enumerate(uploads):
                where = f"{path}.upload[{i}]"
                if not isinstance(item, dict):
                    problems.append(problem(where, "must be a mapping {from, to, mode?}"))
                    continue
                problems += [problem(f"{where}.{k}", "unknown field; expected from, to, mode")
                             for k in item if k not in ("from", "to", "mode")]
                if not isinstance(item.get("from"), str):
                    problems.append(problem(f"{where}.from", "required: a res:// ref or text"))
                if not isinstance(item.get("to"), str) or not item.get("to", "").strip():
                    problems.append(problem(f"{where}.to", "required: the remote path"))
                if "mode" in item:
                    try:
                        parse_mode(item["mode"])
                    except ValueError:
                        problems.append(problem(f"{where}.mode", 'an octal mode such as "0644"'))
    downloads = step.get("download")
    if downloads is not None:
        if not isinstance(downloads, list):
            problems.append(problem(f"{path}.download", "must be a list of {path, name?, "
                                                        "optional?}"))
            return problems
        names: dict[str, int] = {}
        for i, item in enumerate(downloads):
            where = f"{path}.download[{i}]"
            if not isinstance(item, dict):
                problems.append(problem(where, "must be a mapping {path, name?, optional?}"))
                continue
            problems += [problem(f"{where}.{k}", "unknown field; expected path, name, optional")
                         for k in item if k not in ("path", "name", "optional")]
            remote = item.get("path")
            if not isinstance(remote, str) or not remote.strip():
                problems.append(problem(f"{where}.path", "required: the remote file's path"))
                continue
            if "optional" in item and not isinstance(item["optional"], bool):
                problems.append(problem(f"{where}.optional", "must be true or false"))
            name = item.get("name")
            if name is not None and not isinstance(name, str):
                problems.append(problem(f"{where}.name", "must be text"))
                continue
            name = download_name(item)
            if "{{" in remote and name == posixpath.basename(remote):
                continue  # the name comes from a reference: checked when the step runs
            if not FILE_NAME_RE.match(name):
                problems.append(problem(f"{where}.name", "letters, digits, '.', '_' and '-' "
                                                         "(at most 100); set name"))
            elif name in names:
                problems.append(problem(f"{where}.name", f"{name!r} is already the name of "
                                                         f"download[{names[name]}]"))
            else:
                names[name] = i
    return problems


def _open_sftp(transport: paramiko.Transport) -> paramiko.SFTPClient:
    try:
        return paramiko.SFTPClient.from_transport(transport)
    except (paramiko.SSHException, OSError) as exc:
        raise StepFailed(f"the server refused SFTP: {exc}", error_type="SFTPUnavailable",
                         retryable=False) from None


def upload(transport: paramiko.Transport, items: list[dict[str, Any]],
           log: Callable[[str], None]) -> None:
    """Copy each item to the remote host before the command runs. Raises StepFailed."""

    sftp = _open_sftp(transport)
    used_database = False
    try:
        for index, item in enumerate(items):
            source, target = item["from"], item["to"]
            mode = parse_mode(item.get("mode"))
            try:
                with sftp.open(target, "wb") as remote:
                    remote.set_pipelined(True)
                    if source.startswith(RES_PREFIX):
                        used_database = True
                        try:
                            resource = resource_from_uri(source)
                        except NotFound as exc:
                            raise StepFailed(f"upload[{index}]: {exc}", error_type="UploadFailed",
                                             retryable=False) from None
                        with resource.file.open("rb") as local:
                            for chunk in local.chunks(REQUEST_BYTES * 8):
                                remote.write(chunk)
                        size = resource.size
                    else:
                        data = source.encode()
                        remote.write(data)
                        size = len(data)
                if mode is not None:
                    sftp.chmod(target, mode)
            except OSError as exc:
                raise StepFailed(f"upload[{index}] to {target}: {exc.strerror or exc}",
                                 error_type="UploadFailed", retryable=False) from None
            log(f"uploaded {size} bytes to {target}\n")
    finally:
        sftp.close()
        if used_database:
            db_connection.close()  # this runs in the step's thread: leave no connection open


class _Reader:
    """read(n) over a remote file in windows of pipelined requests; refuses to pass max."""

    def __init__(self, remote: paramiko.SFTPFile, size: int, limit: int, path: str):
        self.remote, self.size, self.limit, self.path = remote, size, limit, path
        self.offset = 0
        self.pending = b""

    def read(self, n: int) -> bytes:
        if not self.pending:
            if self.offset >= self.size:
                # The file may have grown since stat: keep reading plainly, within the limit.
                data = self.remote.read(REQUEST_BYTES)
            else:
                end = min(self.size, self.offset + WINDOW_BYTES)
                chunks = [(o, min(REQUEST_BYTES, end - o)) for o in range(self.offset, end,
                                                                             REQUEST_BYTES)]
                data = b"".join(self.remote.readv(chunks))
            self.offset += len(data)
            if self.offset > self.limit:
                raise StepFailed(f"download {self.path} grew past WF_SFTP_MAX_BYTES "
                                 f"({self.limit} bytes)", error_type="DownloadTooLarge",
                                 retryable=False)
            self.pending = data
        data, self.pending = self.pending[:n], self.pending[n:]
        return data


def download(transport: paramiko.Transport, items: list[dict[str, Any]], *,
             store: Callable[..., str], log: Callable[[str], None],
             best_effort: bool = False) -> dict[str, str]:
    """Stream each remote file into a resource; {name: ref}. `store(content=, name=,
    content_type=)` (the context's `resource_store`) writes the bytes and returns what it
    stored. With `best_effort` (the command
    failed), a file that cannot be fetched is skipped with a note instead of failing."""
    limit = max_bytes()
    files: dict[str, str] = {}
    sftp = _open_sftp(transport)
    try:
        for index, item in enumerate(items):
            path, name = item["path"], download_name(item)
            try:
                ref = _download_one(sftp, path, name, limit, store, log,
                                    optional=bool(item.get("optional")))
            except StepFailed as exc:
                if not best_effort:
                    raise
                log(f"download[{index}] skipped: {exc}\n")
                continue
            if ref:
                files[name] = ref
    finally:
        sftp.close()
    return files


def _download_one(sftp: paramiko.SFTPClient, path: str, name: str, limit: int,
                  store: Callable[..., str], log: Callable[[str], None], *,
                  optional: bool) -> str:
    if not FILE_NAME_RE.match(name):
        raise StepFailed(f"download {path}: name {name!r} is not a file name; set name",
                         error_type="DownloadFailed", retryable=False)
    try:
        info = sftp.stat(path)
    except FileNotFoundError:
        if optional:
            log(f"{path} does not exist (optional)\n")
            return ""
        raise StepFailed(f"download {path}: no such file", error_type="DownloadMissing",
                         retryable=False) from None
    except OSError as exc:
        raise StepFailed(f"download {path}: {exc.strerror or exc}", error_type="DownloadFailed",
                         retryable=False) from None
    if stat.S_ISDIR(info.st_mode or 0):
        raise StepFailed(f"download {path} is a directory; download files, e.g. an archive "
                         "made by the command", error_type="DownloadNotAFile", retryable=False)
    if not stat.S_ISREG(info.st_mode or 0):
        raise StepFailed(f"download {path} is not a regular file", error_type="DownloadNotAFile",
                         retryable=False)
    size = int(info.st_size or 0)
    if size > limit:
        raise StepFailed(f"download {path} is {size} bytes, more than WF_SFTP_MAX_BYTES "
                         f"({limit})", error_type="DownloadTooLarge", retryable=False)
    content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
    try:
        with sftp.open(path, "rb") as remote:
            ref = store(content=_Reader(remote, size, limit, path), name=name,
                        content_type=content_type).uri
    except OSError as exc:
        raise StepFailed(f"download {path}: {exc.strerror or exc}", error_type="DownloadFailed",
                         retryable=False) from None
    log(f"downloaded {path} ({size} bytes) as {name}: {ref}\n")
    return ref
