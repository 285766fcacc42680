"""The webhook's settings as one frozen object: `headroom webhook` builds it from its flags and
the serving edge hands it to `create_app(config)` in each gunicorn worker.

Only the standard library loads here, so the command can build it without importing the app.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class WebhookConfig:
    profiles: Path  # the profiles YAML, mounted from a ConfigMap; reloaded when it changes
    # How often the file is checked for changes; 0 runs no watcher (the caller checks itself).
    profile_poll_seconds: float = 5.0
