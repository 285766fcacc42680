"""An app for the serving tests that takes a config object and keeps a "thread": it records in a
file when the serving edge starts and stops it, and answers with its config's greeting."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from serving.server import LIFECYCLE_KEY


@dataclass(frozen=True)
class Config:
    greeting: str
    journal: str  # a file: one line per start() and stop()


class Journal:
    def __init__(self, path: str) -> None:
        self.path = Path(path)

    def start(self) -> None:
        with self.path.open("a") as out:
            out.write("start\n")

    def stop(self) -> None:
        with self.path.open("a") as out:
            out.write("stop\n")


class App:
    """A WSGI app with Flask's `extensions` dict, which is where the serving edge looks."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.extensions: dict[str, Any] = {LIFECYCLE_KEY: Journal(config.journal)}

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        body = self.config.greeting.encode()
        start_response(
            "200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))]
        )
        return [body]


def create_app(config: Config) -> App:
    return App(config)
