"""Noticing that served files changed: the signature both the TLS pair and the profiles use.

A mounted Secret or ConfigMap is updated by swapping a symlink, so neither the path nor always
the mtime changes; the signature takes what does (the resolved path and the target's inode).
"""

from __future__ import annotations

import os
from pathlib import Path

FileSignature = tuple[tuple[str, int, int, int, int], ...]


def file_signature(*paths: str | Path) -> FileSignature:
    """What changes when a file is rewritten or a mounted volume's symlinks are swapped: stat
    follows the links, so a new target shows as a new inode. OSError when a file is missing."""
    signature = []
    for path in paths:
        stat = os.stat(path)
        signature.append(
            (os.path.realpath(path), stat.st_ino, stat.st_dev, stat.st_mtime_ns, stat.st_size)
        )
    return tuple(signature)
