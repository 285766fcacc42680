"""JSON logs, one object per line, for every Headroom process.

A record's message becomes `msg`; structured fields given as `extra={"fields": {...}}` are merged
into the object, so a log line can be filtered by e.g. the AdmissionReview `uid` without parsing
prose. Pure standard library: usable from any component and from gunicorn's logger class.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Mapping
from typing import Any, TextIO

FIELDS_ATTRIBUTE = "fields"
# A dict a WSGI app may put in its environ; serving.server merges it into the access-log line.
LOG_FIELDS_KEY = "headroom.log_fields"


class JsonFormatter(logging.Formatter):
    """Format a record as one JSON object: time, level, logger, msg, the extra fields, exc."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": _utc_time(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields = getattr(record, FIELDS_ATTRIBUTE, None)
        if isinstance(fields, Mapping):
            entry.update(fields)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, separators=(",", ":"))


def _utc_time(created: float) -> str:
    seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created))
    return f"{seconds}.{int(created % 1 * 1000):03d}Z"


def log_fields(**fields: Any) -> dict[str, Any]:
    """`extra=` for a logging call: `log.info("reloaded", extra=log_fields(path=p))`."""
    return {FIELDS_ATTRIBUTE: fields}


def configure(level: int | str = logging.INFO, *, stream: TextIO | None = None) -> None:
    """Send the root logger's records to `stream` (default stderr) as JSON lines."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, "_headroom_json", False):
            root.removeHandler(old)
    handler._headroom_json = True  # type: ignore[attr-defined]  # marks handlers we own
    root.addHandler(handler)
    root.setLevel(level)
