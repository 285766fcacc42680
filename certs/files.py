"""Writing TLS material to disk: each file replaced atomically, keys never readable by others.

`write_atomic` writes a temporary file in the same directory (created with the final mode, so a
key is never briefly world-readable), fsyncs it and renames it over the target: a reader (the
webhook's certificate reloader) sees the old file or the new one, never half of either.
`sync_files` writes only the files whose content or mode differs (`files_hold` asks whether any
does), so an unchanged pair does not touch the reloader's file signature.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

PRIVATE_MODE = 0o600
PUBLIC_MODE = 0o644


@dataclass(frozen=True)
class FileContent:
    data: bytes
    mode: int


def write_atomic(path: Path, data: bytes, *, mode: int) -> None:
    """Replace `path` with `data` atomically; the file never exists with a looser mode."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(tmp, os.O_CREAT | os.O_WRONLY | os.O_TRUNC | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            # The umask may have narrowed the mode os.open was given: set it exactly.
            os.fchmod(handle.fileno(), mode)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def sync_files(directory: Path, files: Mapping[str, FileContent]) -> list[str]:
    """Make each named file in `directory` hold its content and mode, in the order given;
    returns the names that had to be written (an identical file is left alone)."""
    written = []
    for name, content in files.items():
        path = directory / name
        if _holds(path, content):
            continue
        write_atomic(path, content.data, mode=content.mode)
        written.append(name)
    return written


def files_hold(directory: Path, files: Mapping[str, FileContent]) -> bool:
    """Whether every named file in `directory` already holds its content and mode."""
    return all(_holds(directory / name, content) for name, content in files.items())


def _holds(path: Path, content: FileContent) -> bool:
    try:
        same_mode = (path.stat().st_mode & 0o777) == content.mode
        return same_mode and path.read_bytes() == content.data
    except FileNotFoundError:
        return False
