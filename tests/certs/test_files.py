"""Tests for `certs.files`: atomic replacement, exact modes, and only what changed is written."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from certs.files import PRIVATE_MODE, PUBLIC_MODE, FileContent, files_hold, sync_files, write_atomic


@pytest.fixture
def permissive_umask() -> Iterator[None]:
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_key_is_written_0600_whatever_the_umask(tmp_path: Path, permissive_umask: None) -> None:
    key = tmp_path / "tls.key"
    write_atomic(key, b"secret", mode=PRIVATE_MODE)
    assert mode(key) == 0o600
    assert key.read_bytes() == b"secret"


def test_a_tight_umask_does_not_narrow_a_public_file(tmp_path: Path) -> None:
    previous = os.umask(0o077)
    try:
        write_atomic(tmp_path / "tls.crt", b"cert", mode=PUBLIC_MODE)
    finally:
        os.umask(previous)
    assert mode(tmp_path / "tls.crt") == 0o644


def test_a_replacement_is_a_new_inode_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    # A reader holding the old file keeps reading it whole: the new one is renamed over it.
    path = tmp_path / "tls.crt"
    write_atomic(path, b"old", mode=PUBLIC_MODE)
    with path.open("rb") as reader:
        write_atomic(path, b"new", mode=PUBLIC_MODE)
        assert reader.read() == b"old"
    assert path.read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tls.crt"]


def test_a_failed_write_keeps_the_old_file_and_cleans_up(tmp_path: Path) -> None:
    path = tmp_path / "tls.crt"
    write_atomic(path, b"old", mode=PUBLIC_MODE)
    with pytest.raises(TypeError):
        write_atomic(path, "not bytes", mode=PUBLIC_MODE)  # type: ignore[arg-type]
    assert path.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tls.crt"]


def test_sync_writes_only_what_differs_in_content_or_mode(tmp_path: Path) -> None:
    files = {
        "ca.crt": FileContent(b"ca", PUBLIC_MODE),
        "tls.key": FileContent(b"key", PRIVATE_MODE),
        "tls.crt": FileContent(b"cert", PUBLIC_MODE),
    }
    assert not files_hold(tmp_path, files)
    assert sync_files(tmp_path, files) == ["ca.crt", "tls.key", "tls.crt"]
    assert files_hold(tmp_path, files)
    inode = (tmp_path / "tls.key").stat().st_ino
    assert sync_files(tmp_path, files) == []
    assert (tmp_path / "tls.key").stat().st_ino == inode  # untouched: the reloader sees no change
    (tmp_path / "tls.key").chmod(0o644)
    files["tls.crt"] = FileContent(b"cert 2", PUBLIC_MODE)
    assert sync_files(tmp_path, files) == ["tls.key", "tls.crt"]
    assert mode(tmp_path / "tls.key") == 0o600
