"""Kubeconfig files for the tests of choosing a cluster as kubectl does."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


def kubeconfig(
    path: Path, *, current: str | None, contexts: dict[str, tuple[str, str | None]]
) -> Path:
    """A kubeconfig whose contexts (name -> (server, namespace)) each have a cluster and user of
    the same name."""
    config: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": n, "cluster": {"server": s, "insecure-skip-tls-verify": True}}
            for n, (s, _) in contexts.items()
        ],
        "users": [{"name": n, "user": {"token": f"token-{n}"}} for n in contexts],
        "contexts": [
            {"name": n, "context": {"cluster": n, "user": n} | ({"namespace": ns} if ns else {})}
            for n, (_, ns) in contexts.items()
        ],
    }
    if current:
        config["current-context"] = current
    path.write_text(yaml.safe_dump(config))
    return path
