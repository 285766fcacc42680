"""A tiny WSGI app for the serving tests: /healthz, and /slow which marks that it started (a
file) and answers after `seconds`, to show in-flight requests survive a graceful shutdown."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs


def create_app(marker: str) -> Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ["PATH_INFO"] == "/slow":
            Path(marker).write_text("started")
            seconds = float(parse_qs(environ.get("QUERY_STRING", ""))["seconds"][0])
            time.sleep(seconds)  # the slow request itself, not synchronisation
            body = b"done"
        elif environ["PATH_INFO"] == "/echo":
            body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        else:
            body = b"ok"
        start_response(
            "200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))]
        )
        return [body]

    return app
