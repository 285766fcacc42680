"""Serve a WSGI app under gunicorn, the way every Headroom HTTP component runs in a cluster.

`run(ServeOptions(app="pkg.app:create_app", config=settings, ...))` starts gunicorn with threaded
workers that keep connections alive (the kube-apiserver and kube-scheduler reuse them), a
per-request socket timeout, graceful shutdown on SIGTERM, JSON access and error logs, and
optionally TLS (1.2 at least) whose certificate and key are re-read when their files change: each
worker polls the files and swaps in a freshly built SSLContext, so new connections get the new
certificate within `cert_poll_seconds` and no connection ever sees a half-rotated pair. Nothing
here knows which app it serves; an app may add fields to its access-log line through
`environ[LOG_FIELDS_KEY]`.

Each worker imports the app by name (so that prometheus_client first loads there) and calls the
factory with the frozen `config` the command built from its flags: settings travel as an object,
never through the environment. A Flask app that keeps threads of its own puts an object with
`start()` and `stop()` in `app.extensions[LIFECYCLE_KEY]`: it is started once the worker is up
and stopped when the worker exits.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import shutil
import ssl
import sys
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from serving.address import split_host_port
from serving.logs import LOG_FIELDS_KEY, JsonFormatter, log_fields
from serving.tls import CertificateReloader, build_server_context

METRICS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"  # prometheus_client's multiprocess mode
_SHM = "/dev/shm"  # noqa: S108  # gunicorn's own heartbeat files, private to its workers

LIFECYCLE_KEY = "headroom_lifecycle"  # in a Flask app's `extensions`: start() and stop()
StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class ServeError(ValueError):
    """Options that cannot work; the message names the option and the expected form."""


@dataclass(frozen=True)
class ServeOptions:
    # A gunicorn app URI. With `config`, a factory each worker calls with it
    # ("webhook.app:create_app"); without, the app or an expression making it ("m:make('x')").
    app: str
    config: object | None = None
    bind: str = "127.0.0.1:8443"
    certfile: str | None = None
    keyfile: str | None = None
    workers: int = 1
    threads: int = 8
    request_timeout_seconds: float = 10.0
    graceful_timeout_seconds: float = 20.0
    keepalive_seconds: float = 75.0  # the apiserver reuses idle connections for up to 90 s
    cert_poll_seconds: float = 10.0
    log_level: str = "info"
    access_log: bool = True
    name: str = "headroom"
    # prometheus_client's multiprocess directory, so /metrics adds up all workers; None: a fresh
    # temporary directory when there is more than one worker.
    metrics_dir: str | None = None

    @property
    def tls(self) -> bool:
        return self.certfile is not None


def parse_bind(text: str) -> tuple[str, int]:
    """`HOST:PORT` (IPv6 as `[::1]:8443`) -> (host, port); ServeError naming --bind otherwise."""
    parsed = split_host_port(text)
    if parsed is None or not parsed[0] or parsed[1] == 0:
        raise ServeError(f"--bind: expected HOST:PORT such as 0.0.0.0:8443 (got {text!r})")
    return parsed


def validate(options: ServeOptions) -> None:
    """Check what can be checked before forking: the address, the numbers, the TLS pair."""
    parse_bind(options.bind)
    if (options.certfile is None) != (options.keyfile is None):
        raise ServeError("--certfile and --keyfile: give both for TLS, or neither for plain HTTP")
    for flag, value in (("--workers", options.workers), ("--threads", options.threads)):
        if value < 1:
            raise ServeError(f"{flag}: expected a whole number of at least 1 (got {value})")
    for flag, seconds in (
        ("--timeout", options.request_timeout_seconds),
        ("--graceful-timeout", options.graceful_timeout_seconds),
        ("--keepalive", options.keepalive_seconds),
        ("--cert-poll-seconds", options.cert_poll_seconds),
    ):
        if not seconds > 0:
            raise ServeError(f"{flag}: expected a number of seconds above 0 (got {seconds})")
    multiprocess = options.workers > 1 or options.metrics_dir is not None
    if (
        multiprocess
        and "prometheus_client.values" in sys.modules
        and not os.environ.get(METRICS_DIR_ENV)
    ):
        # Its multiprocess mode is chosen when it is first imported: too late now.
        raise ServeError(
            "--workers above 1 needs prometheus_client's multiprocess mode, but "
            "this process imported it already: import the app only in the "
            "workers (gunicorn loads it by name)"
        )
    if options.certfile and options.keyfile:
        try:
            build_server_context(options.certfile, options.keyfile)
        except (OSError, ssl.SSLError) as exc:
            raise ServeError(f"--certfile/--keyfile: cannot load the TLS pair: {exc}") from exc


# -- gunicorn --------------------------------------------------------------------------------------


class RequestTimeout:
    """WSGI middleware: every socket read or write of the request (its body, the response) must
    progress within `seconds`, so a stalled client frees its thread instead of holding it."""

    def __init__(self, app: WsgiApp, seconds: float) -> None:
        self.app, self.seconds = app, seconds

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        sock = environ.get("gunicorn.socket")
        if sock is not None:
            sock.settimeout(self.seconds)
        return self.app(environ, start_response)


def access_fields(
    status: object, environ: Mapping[str, Any], *, sent: object, duration: timedelta
) -> dict[str, Any]:
    """One access-log line's fields: the request, and whatever the app put in LOG_FIELDS_KEY."""
    code = status.split(None, 1)[0] if isinstance(status, str) else status
    fields: dict[str, Any] = {
        "remote": environ.get("REMOTE_ADDR"),
        "method": environ.get("REQUEST_METHOD"),
        "path": environ.get("PATH_INFO"),
        "status": int(str(code)),
        "bytes": sent,
        "duration_ms": round(duration.total_seconds() * 1000, 3),
    }
    fields.update(environ.get(LOG_FIELDS_KEY) or {})
    return fields


def _application(options: ServeOptions) -> Any:
    """The gunicorn application. gunicorn is imported here, not at the top, so that a command's
    `--help` does not pay for it."""
    from gunicorn import glogging, util  # type: ignore[import-untyped]  # noqa: PLC0415
    from gunicorn.app.base import BaseApplication  # type: ignore[import-untyped]  # noqa: PLC0415

    class JsonLogger(glogging.Logger):  # type: ignore[misc]
        """gunicorn's logger with every line as JSON."""

        def setup(self, cfg: Any) -> None:
            super().setup(cfg)
            for logger in (self.error_log, self.access_log):
                for handler in logger.handlers:
                    handler.setFormatter(JsonFormatter())
            # The apps' own loggers (propagating to the root) log to stderr as JSON too.
            root = logging.getLogger()
            if not any(isinstance(h.formatter, JsonFormatter) for h in root.handlers):
                handler = logging.StreamHandler(sys.stderr)
                handler.setFormatter(JsonFormatter())
                root.addHandler(handler)
            root.setLevel(self.loglevel)

        def access(
            self, resp: Any, req: Any, environ: Mapping[str, Any], request_time: timedelta
        ) -> None:
            if self.access_log_enabled:
                fields = access_fields(
                    resp.status, environ, sent=getattr(resp, "sent", None), duration=request_time
                )
                self.access_log.info("request", extra=log_fields(**fields))

    class Gunicorn(BaseApplication):  # type: ignore[misc]
        def __init__(self) -> None:
            self.reloader: CertificateReloader | None = None
            self.lifecycle: Any = None
            super().__init__()

        def load_config(self) -> None:
            settings = _settings(
                options,
                context=self.context,
                worker_started=self.started,
                worker_exiting=self.exiting,
            )
            settings["logger_class"] = JsonLogger
            for key, value in settings.items():
                if key in self.cfg.settings:  # settings newer than this gunicorn are skipped
                    self.cfg.set(key, value)

        def load(self) -> WsgiApp:
            target = util.import_app(options.app)
            app = target if options.config is None else target(options.config)
            self.lifecycle = getattr(app, "extensions", {}).get(LIFECYCLE_KEY)
            return RequestTimeout(app, options.request_timeout_seconds)

        def context(self) -> ssl.SSLContext:
            if self.reloader is None:  # a worker's first connection before post_worker_init
                self.reloader = _new_reloader(options)
            return self.reloader.context

        def started(self) -> None:
            if options.tls:
                self.reloader = self.reloader or _new_reloader(options)
                self.reloader.start()
            if self.lifecycle is not None:
                self.lifecycle.start()

        def exiting(self) -> None:
            if self.lifecycle is not None:
                self.lifecycle.stop()
            if self.reloader is not None:
                self.reloader.stop()

    return Gunicorn()


def _new_reloader(options: ServeOptions) -> CertificateReloader:
    assert options.certfile is not None and options.keyfile is not None
    return CertificateReloader(
        options.certfile, options.keyfile, poll_seconds=options.cert_poll_seconds
    )


def _settings(
    options: ServeOptions,
    *,
    context: Callable[[], ssl.SSLContext],
    worker_started: Callable[[], None],
    worker_exiting: Callable[[], None],
) -> dict[str, Any]:
    host, port = parse_bind(options.bind)

    def child_exit(server: Any, worker: Any) -> None:
        if os.environ.get(METRICS_DIR_ENV):  # a dead worker's live gauges must not linger
            from prometheus_client import multiprocess  # noqa: PLC0415

            multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]

    def post_worker_init(worker: Any) -> None:
        worker_started()

    def worker_exit(server: Any, worker: Any) -> None:  # in the worker, after its last request
        worker_exiting()

    def ssl_context(config: Any, default_factory: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
        return context()

    settings: dict[str, Any] = {
        "bind": [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"],
        "worker_class": "gthread",
        "workers": options.workers,
        "threads": options.threads,
        "keepalive": math.ceil(options.keepalive_seconds),  # gunicorn takes whole seconds
        # gthread workers heartbeat from their main loop; this only catches a wedged process.
        "timeout": max(30, math.ceil(options.request_timeout_seconds * 3)),
        "graceful_timeout": math.ceil(options.graceful_timeout_seconds),
        "loglevel": options.log_level,
        "errorlog": "-",
        "accesslog": "-" if options.access_log else None,
        "proc_name": options.name,
        "post_worker_init": post_worker_init,
        "worker_exit": worker_exit,
        "child_exit": child_exit,
        # Several servers may run side by side (tests, sidecars): no shared control socket file.
        "control_socket_disable": True,
        # The worker heartbeat files go to shared memory: the root filesystem is read-only.
        "worker_tmp_dir": _SHM if Path(_SHM).is_dir() else None,
    }
    if options.tls:
        settings |= {
            "certfile": options.certfile,
            "keyfile": options.keyfile,
            "ssl_context": ssl_context,
        }
    return settings


def run(options: ServeOptions) -> int:
    """Serve until SIGTERM/SIGINT (graceful: in-flight requests finish); the exit status."""
    validate(options)
    master_pid = os.getpid()
    made = None
    metrics_dir = options.metrics_dir
    if metrics_dir is None and options.workers > 1:
        metrics_dir = made = tempfile.mkdtemp(prefix="headroom-metrics-")
    if metrics_dir is not None:
        _prepare_metrics_dir(Path(metrics_dir))
    try:
        _application(options).run()
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1
    finally:
        # Workers are forked inside this call and leave through here too: only the master
        # removes the directory they all write to.
        if made is not None and os.getpid() == master_pid:
            shutil.rmtree(made, ignore_errors=True)
    return 0


def _prepare_metrics_dir(path: Path) -> None:
    """Empty (of a previous run's files) and announced to the workers, which import
    prometheus_client after the fork and so all write their values there."""
    path.mkdir(parents=True, exist_ok=True)
    for stale in path.glob("*.db"):
        stale.unlink()
    os.environ[METRICS_DIR_ENV] = str(path)


# -- command line ----------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser, *, default_bind: str) -> None:
    """The serving flags every HTTP component's subcommand shares."""
    add = parser.add_argument
    add(
        "--bind",
        metavar="HOST:PORT",
        default=default_bind,
        help=f"address to listen on (default: {default_bind})",
    )
    add("--certfile", metavar="FILE", help="TLS certificate (PEM); re-read when it changes")
    add("--keyfile", metavar="FILE", help="TLS private key (PEM); re-read when it changes")
    add("--workers", type=int, default=1, help="worker processes (default: 1)")
    add("--threads", type=int, default=8, help="threads per worker (default: 8)")
    add(
        "--timeout",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="socket timeout for each read/write of a request (default: 10)",
    )
    add(
        "--graceful-timeout",
        type=float,
        default=20.0,
        metavar="SECONDS",
        help="how long in-flight requests may finish after SIGTERM (default: 20)",
    )
    add(
        "--keepalive",
        type=float,
        default=75.0,
        metavar="SECONDS",
        help="how long an idle connection is kept open (default: 75)",
    )
    add(
        "--cert-poll-seconds",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="how often the certificate files are checked for a new pair (default: 10)",
    )
    add(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="log level (default: info)",
    )
    add("--no-access-log", action="store_true", help="do not log each request")
    add(
        "--metrics-dir",
        metavar="DIR",
        help="where the workers keep their Prometheus values, so /metrics adds them up "
        "(default with --workers > 1: a new temporary directory)",
    )


def options_from_args(
    args: argparse.Namespace, *, app: str, name: str, config: object | None = None
) -> ServeOptions:
    return ServeOptions(
        app=app,
        config=config,
        bind=args.bind,
        certfile=args.certfile,
        keyfile=args.keyfile,
        workers=args.workers,
        threads=args.threads,
        request_timeout_seconds=args.timeout,
        graceful_timeout_seconds=args.graceful_timeout,
        keepalive_seconds=args.keepalive,
        cert_poll_seconds=args.cert_poll_seconds,
        log_level=args.log_level,
        access_log=not args.no_access_log,
        name=name,
        metrics_dir=args.metrics_dir,
    )
