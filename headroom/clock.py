"""Times as Kubernetes writes them: RFC 3339 in UTC, to and from Unix seconds.

GPUNode reports, leases, pod conditions and AIScaler statuses all carry such times; this is the
one place that formats and parses them. Pure: no client imports.
"""

from __future__ import annotations

from datetime import UTC, datetime

from headroom.fields import ErrorType, FieldError

_EXPECTED = "expected an RFC 3339 time such as 2024-05-01T12:00:00Z"


def format_time(unix_seconds: float) -> str:
    """RFC 3339 in UTC, second precision, as Kubernetes writes times."""
    return datetime.fromtimestamp(unix_seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: object, *, field: str, error: ErrorType = FieldError) -> float:
    """Unix seconds of an RFC 3339 time; `error` (a FieldError) naming `field` otherwise."""
    if not isinstance(text, str):
        raise error(field, _EXPECTED)
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise error(field, f"{_EXPECTED} (got {text!r})") from exc
    if parsed.tzinfo is None:
        raise error(field, f"the time must carry a zone, such as Z (got {text!r})")
    return parsed.timestamp()
