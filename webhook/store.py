"""The profiles file on disk, loaded at start and reloaded when it changes.

A ConfigMap volume updates a file by swapping a symlink (`profiles.yaml -> ..data/profiles.yaml`,
`..data -> ..2024_...`), so the file is watched by what `stat` sees through the links (inode,
device, mtime, size) plus its resolved path, polled every few seconds. A new file is parsed whole
and swapped in as one immutable `ProfileSet`; an invalid one keeps the last good set, is logged
once, and reported through `on_reload(ok, message)` (counted in /metrics).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from headroom.worker import Worker
from serving.files import FileSignature, file_signature
from serving.logs import log_fields
from webhook.profiles import ProfileError, ProfileSet, parse_profiles

log = logging.getLogger("webhook.profiles")
ReloadListener = Callable[[bool, str], None]


def load_profiles(path: Path) -> ProfileSet:
    """Read and validate `path`; ProfileError (naming the key) or OSError."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ProfileError("(file)", f"not UTF-8 text: {exc}") from None
    return parse_profiles(text)


class ProfileStore:
    """The current profiles. `current` is replaced, never changed, so readers need no lock."""

    def __init__(
        self, path: Path, *, poll_seconds: float = 5.0, on_reload: ReloadListener | None = None
    ) -> None:
        self.path = path
        self.poll_seconds = poll_seconds
        self.on_reload = on_reload
        self._signature: FileSignature | None = file_signature(path)
        self.current: ProfileSet = load_profiles(path)  # at start, a bad file is fatal
        self.valid = True  # whether the file on disk is the one being served
        self.worker = Worker(self._loop, name="profile-reloader")

    def check(self) -> bool | None:
        """Reload if the file changed: True when a new set is in use, False when the new file
        was rejected (the old set stays), None when nothing changed."""
        try:
            signature: FileSignature | None = file_signature(self.path)
        except OSError:
            signature = None
        if signature == self._signature:
            return None
        self._signature = signature
        try:
            profiles = load_profiles(self.path)
        except (ProfileError, OSError) as exc:
            self.valid = False
            log.error(
                "profiles file rejected; still serving the last good profiles",
                extra=log_fields(path=str(self.path), error=str(exc), serving=self.current.digest),
            )
            self._notify(ok=False, message=str(exc))
            return False
        self.valid = True
        if profiles.digest == self.current.digest:
            return None  # touched or re-linked, same content
        self.current = profiles
        log.info(
            "profiles reloaded",
            extra=log_fields(
                path=str(self.path), digest=profiles.digest, profiles=sorted(profiles.profiles)
            ),
        )
        self._notify(ok=True, message="")
        return True

    def _notify(self, *, ok: bool, message: str) -> None:
        if self.on_reload is not None:
            self.on_reload(ok, message)

    def start(self) -> None:
        """Poll in a daemon thread (one per worker process) until `stop()`."""
        self.worker.start()

    def stop(self) -> None:
        self.worker.stop()

    def _loop(self) -> None:
        while not self.worker.stopped.wait(self.poll_seconds):
            try:
                self.check()
            except Exception:  # the watcher must outlive any surprise; the old set keeps serving
                log.exception("profile reload check failed")
