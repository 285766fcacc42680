"""`kubectl-headroom` on a PATH for the tests: the venv's own console script once the package is
installed with it, else a wrapper that runs this checkout's `cli.kubectl:main` with the venv's
Python (the same entry point pyproject declares)."""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
INSTALLED = Path(sys.executable).parent / "kubectl-headroom"
ENTRY = "import sys; from cli.kubectl import main; sys.exit(main())"


def plugin_dir(tmp_path: Path) -> Path:
    """A directory with an executable `kubectl-headroom`, to put first on PATH."""
    where = tmp_path / "plugin-bin"
    where.mkdir(exist_ok=True)
    script = where / "kubectl-headroom"
    if INSTALLED.exists():
        script.symlink_to(INSTALLED)
        print(f"kubectl-headroom: the installed console script {INSTALLED}")
    else:
        script.write_text(
            "#!/bin/sh\n"
            f"PYTHONPATH={shlex.quote(str(ROOT))}${{PYTHONPATH:+:$PYTHONPATH}} exec "
            f'{shlex.quote(sys.executable)} -c {shlex.quote(ENTRY)} "$@"\n'
        )
        script.chmod(0o755)
        print(f"kubectl-headroom: a wrapper running {ROOT}'s cli.kubectl:main (not installed)")
    return where


def env_with(path_first: Path) -> dict[str, str]:
    """This process's environment with `path_first` leading PATH and this checkout importable."""
    env = dict(os.environ)
    env["PATH"] = f"{path_first}{os.pathsep}{env.get('PATH', '')}"
    paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys([str(ROOT), *paths]))
    return env
