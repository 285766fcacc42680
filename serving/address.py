"""`HOST:PORT` as every listening command takes it (`--bind`, `--metrics-bind`): one parser of the
form, each command adding its own rules (a port of 0, which hosts) and its own error."""

from __future__ import annotations

MAX_PORT = 65535


def split_host_port(text: str) -> tuple[str, int] | None:
    """`HOST:PORT` or `[IPv6]:PORT` -> (host, port), the port in 0..65535 and the IPv6 brackets
    removed; None when the text is not of that form. The host may be empty: the caller decides."""
    host, sep, port_text = text.rpartition(":")
    # ASCII digits only: str.isdigit() also passes "²", which int() then refuses.
    if not sep or not (port_text.isascii() and port_text.isdigit()):
        return None
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if "[" in host or "]" in host or int(port_text) > MAX_PORT:
        return None
    return host, int(port_text)
