"""The webhook's Flask app: `create_app(config)` and the blueprint with its four routes.

`POST /mutate` answers AdmissionReviews (see `webhook.review`), `GET /healthz` says the process
is up, `GET /readyz` that profiles are loaded, `GET /metrics` is Prometheus text. Under gunicorn
each worker builds the app from the `WebhookConfig` that `headroom webhook` made of its flags, and
the serving edge starts the profiles watcher once the worker is up (`LIFECYCLE_KEY`). A pod with
DRA claims has them read (`webhook.claims`) before its review, which stays free of I/O.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from flask import Blueprint, Flask, Response, current_app, jsonify, request
from prometheus_client import CONTENT_TYPE_LATEST
from werkzeug.exceptions import HTTPException

from headroom import __version__
from headroom.podclaims import NO_LOOKUPS
from serving.logs import LOG_FIELDS_KEY
from serving.server import LIFECYCLE_KEY
from webhook.config import WebhookConfig
from webhook.dra import without_api_access
from webhook.metrics import WebhookMetrics
from webhook.review import ReviewOutcome, claims_to_read, read, review
from webhook.store import ProfileStore

if TYPE_CHECKING:
    from webhook.claims import ClaimReader

# An AdmissionReview for a CREATE carries one object, which etcd caps at about 1.5 MiB; JSON with
# the review's envelope stays well within this.
MAX_CONTENT_LENGTH = 8 * 2**20
EXTENSION = "headroom_webhook"

bp = Blueprint("webhook", __name__)


class State:
    """What the routes share: the profiles, the metrics, the version stamped into pods, and the
    reader of DRA claims (None without API access)."""

    def __init__(
        self,
        store: ProfileStore,
        metrics: WebhookMetrics,
        version: str,
        *,
        config: WebhookConfig,
        claims: ClaimReader | None,
    ) -> None:
        self.store, self.metrics, self.version = store, metrics, version
        self.config, self.claims = config, claims


def create_app(config: WebhookConfig, *, version: str = __version__) -> Flask:
    """The app serving `config`'s profiles; its watcher starts with `extensions[LIFECYCLE_KEY]`."""
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = MAX_CONTENT_LENGTH
    metrics = WebhookMetrics()
    store = ProfileStore(
        config.profiles, poll_seconds=config.profile_poll_seconds, on_reload=metrics.reloaded
    )
    claims = None
    if config.api_access:  # the client loads only then: without access, none of it is needed
        from webhook.claims import claim_reader  # noqa: PLC0415

        claims = claim_reader(config)
    app.extensions[EXTENSION] = State(store, metrics, version, config=config, claims=claims)
    app.extensions[LIFECYCLE_KEY] = Watcher(store, config.profile_poll_seconds)
    app.register_blueprint(bp)
    app.register_error_handler(HTTPException, _http_error)
    return app


class Watcher:
    """Starts and stops the profiles watcher; a poll of 0 runs none (tests check by hand)."""

    def __init__(self, store: ProfileStore, poll_seconds: float) -> None:
        self.store, self.poll_seconds = store, poll_seconds

    def start(self) -> None:
        if self.poll_seconds > 0:
            self.store.start()

    def stop(self) -> None:
        self.store.stop()


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
    parsed = read(body)
    if isinstance(parsed, ReviewOutcome):
        outcome = parsed
    else:
        lookups = NO_LOOKUPS
        target = claims_to_read(parsed, namespace_opted_in=namespace_opted_in)
        if target is not None:
            lookups = (
                shared.claims.lookups(*target)
                if shared.claims is not None
                else without_api_access(device_classes=shared.config.gpu_device_classes)
            )
        outcome = review(
            parsed,
            shared.store.current,
            version=shared.version,
            namespace_opted_in=namespace_opted_in,
            lookups=lookups,
        )
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
    return jsonify(
        {
            "status": "ready",
            "profiles": sorted(store.current.profiles),
            "digest": store.current.digest,
            "fileValid": store.valid,
        }
    )


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
