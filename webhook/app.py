"""The webhook's Flask app: `create_app(config=None)` and the blueprint with its four routes.

`POST /mutate` answers AdmissionReviews (see `webhook.review`), `GET /healthz` says the process
is up, `GET /readyz` that profiles are loaded, `GET /metrics` is Prometheus text. Under gunicorn
the app is built per worker from the environment (`HEADROOM_WEBHOOK_PROFILES`,
`HEADROOM_WEBHOOK_POLL_SECONDS`), which `headroom webhook` sets; tests pass `config`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify, request
from prometheus_client import CONTENT_TYPE_LATEST
from werkzeug.exceptions import HTTPException

from headroom import __version__
from serving.logs import LOG_FIELDS_KEY
from webhook.metrics import WebhookMetrics
from webhook.review import review
from webhook.settings import POLL_ENV, PROFILES_ENV
from webhook.store import ProfileStore

# An AdmissionReview for a CREATE carries one object, which etcd caps at about 1.5 MiB; JSON with
# the review's envelope stays well within this.
MAX_CONTENT_LENGTH = 8 * 2**20
EXTENSION = "headroom_webhook"

bp = Blueprint("webhook", __name__)


class State:
    """What the routes share: the profiles, the metrics, the version stamped into pods."""

    def __init__(self, store: ProfileStore, metrics: WebhookMetrics, version: str) -> None:
        self.store, self.metrics, self.version = store, metrics, version


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = MAX_CONTENT_LENGTH
    app.config["HEADROOM_PROFILES"] = os.environ.get(PROFILES_ENV)
    app.config["HEADROOM_POLL_SECONDS"] = float(os.environ.get(POLL_ENV, "5"))
    app.config["HEADROOM_VERSION"] = __version__
    app.config.update(config or {})
    if not app.config["HEADROOM_PROFILES"]:
        raise RuntimeError(f"no profiles file: set {PROFILES_ENV} or config HEADROOM_PROFILES")
    metrics = WebhookMetrics()
    poll_seconds = float(app.config["HEADROOM_POLL_SECONDS"])
    store = ProfileStore(Path(app.config["HEADROOM_PROFILES"]), poll_seconds=poll_seconds,
                         on_reload=metrics.reloaded)
    if poll_seconds > 0:  # 0: no watcher thread, the caller runs store.check() itself
        store.start()
    app.extensions[EXTENSION] = State(store, metrics, app.config["HEADROOM_VERSION"])
    app.register_blueprint(bp)
    app.register_error_handler(HTTPException, _http_error)
    return app


def state() -> State:
    found: State = current_app.extensions[EXTENSION]
    return found


@bp.post("/mutate")
def mutate() -> tuple[Response, int]:
    return _answer(namespace_opted_in=False)


@bp.post("/mutate/namespace")
def mutate_namespace() -> tuple[Response, int]:
    """The webhook for namespaces labelled `headroom.dev/managed: "true"`: their GPU pods are
    managed without a pod label (the configuration's namespaceSelector decides who comes here)."""
    return _answer(namespace_opted_in=True)


def _answer(*, namespace_opted_in: bool) -> tuple[Response, int]:
    started = time.perf_counter()
    shared = state()
    metrics = shared.metrics
    try:
        body = request.get_data(cache=False)
    except OSError as exc:  # the client stalled past the request timeout, or went away
        metrics.requests.labels(result="invalid").inc()
        return jsonify({"error": f"body: not received completely ({exc})", "field": "body"}), 400
    outcome = review(body, shared.store.current, version=shared.version,
                     namespace_opted_in=namespace_opted_in)
    metrics.requests.labels(result=outcome.result).inc()
    if outcome.operations:
        metrics.patches.labels(profile=outcome.profile).inc()
        metrics.patch_operations.inc(outcome.operations)
    request.environ[LOG_FIELDS_KEY] = dict(outcome.log)
    metrics.latency.observe(time.perf_counter() - started)
    return jsonify(outcome.body), outcome.status


@bp.get("/healthz")
def healthz() -> Response:
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz() -> Response:
    store = state().store
    return jsonify({"status": "ready", "profiles": sorted(store.current.profiles),
                    "digest": store.current.digest, "fileValid": store.valid})


@bp.get("/metrics")
def metrics() -> Response:
    return Response(state().metrics.exposition(), mimetype=CONTENT_TYPE_LATEST)


def _http_error(error: HTTPException) -> tuple[Response, int]:
    code = error.code or 500
    message = error.description or error.name
    if code == 413:
        message = f"request body larger than {MAX_CONTENT_LENGTH} bytes"
    if request.path == "/mutate" and code in (400, 413):
        state().metrics.requests.labels(result="invalid").inc()
    return jsonify({"error": f"{error.name}: {message}"}), code
