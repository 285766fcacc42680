"""The helm that renders, lints and installs charts/headroom: where it is, and running it.

`build.sh` beside this file builds helm from the Go module helm.sh/helm/v3 at the version in
`versions.env` (`make helm`, once per machine) into `$HEADROOM_CACHE/helm-<version>/bin/helm`
(default cache `~/.cache/headroom`). Tests and `make manifests` find it with `helm_binary()`, which
says to run `make helm` when it is missing rather than building behind the caller's back (a cold
build takes minutes).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
BUILD_SCRIPT = HERE / "build.sh"
VERSIONS_FILE = HERE / "versions.env"
CHART = HERE.parents[1] / "charts" / "headroom"


class HelmMissing(FileNotFoundError):
    """helm has not been built on this machine; the message says how to build it."""


def helm_version(env: Mapping[str, str] = os.environ) -> str:
    """HELM_VERSION from versions.env, or from `env` when set there (as build.sh reads it)."""
    for line in VERSIONS_FILE.read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() == "HELM_VERSION":
            return env.get("HELM_VERSION") or value.strip()
    raise ValueError(f"{VERSIONS_FILE}: no HELM_VERSION line")


def cache_dir(env: Mapping[str, str] = os.environ) -> Path:
    return Path(env.get("HEADROOM_CACHE") or Path.home() / ".cache" / "headroom")


def helm_binary(env: Mapping[str, str] = os.environ) -> Path:
    """The built helm; HelmMissing naming `make helm` when this machine has none yet."""
    version = helm_version(env)
    out = cache_dir(env) / f"helm-{version}"
    path = out / "bin" / "helm"
    # RECIPE is written last by build.sh: without it the build did not finish.
    if not (path.is_file() and os.access(path, os.X_OK) and (out / "RECIPE").is_file()):
        raise HelmMissing(
            f"{path}: missing; run `make helm` (tooling/helm/build.sh builds helm {version} "
            "from Go modules, once per machine)"
        )
    return path


def run_helm(
    args: Sequence[str],
    *,
    check: bool = True,
    timeout_seconds: float = 120.0,
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """`helm ARGS`, output captured; with `check`, a failure raises naming the command and
    helm's own message."""
    result = subprocess.run(
        [str(helm_binary()), *args],
        capture_output=True,
        text=True,
        timeout=timeout_seconds,
        check=False,
        env=None if env is None else dict(env),
    )
    if check and result.returncode != 0:
        raise HelmFailed(args, result.stderr)
    return result


class HelmFailed(RuntimeError):
    """A helm command that exited non-zero; `stderr` is helm's message."""

    def __init__(self, args: Sequence[str], stderr: str) -> None:
        self.args_ = tuple(args)
        self.stderr = stderr.strip()
        super().__init__(f"helm {' '.join(args)}: {self.stderr}")
