"""The Flask app through its test client: routes, JSON errors, body limit, metrics, reloads."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families

from serving.server import LIFECYCLE_KEY
from tests.kubeapi.fake import FakeKube
from tests.webhook.helpers import (
    GPU_REQUEST,
    dra_pod,
    encode,
    gpu_pod,
    patch_of,
    review_body,
    template,
)
from webhook.app import EXTENSION, MAX_CONTENT_LENGTH, create_app
from webhook.claims import ClaimReader
from webhook.config import WebhookConfig


def samples(client: FlaskClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.content_type.startswith("text/plain")
    found = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def requests_total(client: FlaskClient, result: str) -> float:
    return samples(client)[("headroom_webhook_requests_total", (("result", result),))]


def test_mutate_answers_a_review_with_a_patch(client: FlaskClient) -> None:
    response = client.post(
        "/mutate", data=encode(review_body(gpu_pod(), uid="abc")), content_type="application/json"
    )
    assert response.status_code == 200
    body = response.get_json()
    assert body["response"]["uid"] == "abc" and body["response"]["allowed"] is True
    assert patch_of(body["response"])


def test_health_and_readiness(client: FlaskClient) -> None:
    assert client.get("/healthz").get_json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.get_json()["profiles"] == ["default", "gpu-large", "shared-small"]


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/mutate", 405),
        ("POST", "/nowhere", 404),
        ("DELETE", "/healthz", 405),
    ],
)
def test_http_errors_are_json(client: FlaskClient, method: str, path: str, status: int) -> None:
    response = client.open(path, method=method)
    assert response.status_code == status
    assert "error" in response.get_json()


def test_malformed_json_is_a_400_with_a_json_error(client: FlaskClient) -> None:
    response = client.post("/mutate", data=b"{oops")
    assert response.status_code == 400
    assert response.get_json()["field"] == "body"
    assert requests_total(client, "invalid") == 1


def test_the_namespace_route_refuses_what_is_not_a_review_the_same_way(client: FlaskClient) -> None:
    response = client.post("/mutate/namespace", data=b"{oops")
    assert response.status_code == 400
    assert response.get_json()["field"] == "body"
    response = client.post("/mutate/namespace", data=encode({"apiVersion": "v1"}))
    assert response.status_code == 400
    assert response.get_json()["field"] == "apiVersion"


def test_a_body_over_the_limit_is_refused_with_413(client: FlaskClient, app: Flask) -> None:
    assert app.config["MAX_CONTENT_LENGTH"] == MAX_CONTENT_LENGTH
    response = client.post("/mutate", data=b" " * (MAX_CONTENT_LENGTH + 1))
    assert response.status_code == 413
    assert str(MAX_CONTENT_LENGTH) in response.get_json()["error"]


def test_metrics_count_results_patches_and_latency(client: FlaskClient) -> None:
    client.post("/mutate", data=encode(review_body(gpu_pod())))
    client.post(
        "/mutate",
        data=encode(review_body(gpu_pod(annotations={"headroom.dev/gpu-memory": "lots"}))),
    )
    client.post("/mutate", data=encode(review_body(gpu_pod(), operation="DELETE")))
    found = samples(client)
    assert found[("headroom_webhook_requests_total", (("result", "patched"),))] == 1
    assert found[("headroom_webhook_requests_total", (("result", "denied"),))] == 1
    assert found[("headroom_webhook_requests_total", (("result", "ignored"),))] == 1
    assert found[("headroom_webhook_patches_total", (("profile", "default"),))] == 1
    assert found[("headroom_webhook_patch_operations_total", ())] >= 4
    assert found[("headroom_webhook_request_duration_seconds_count", ())] == 3


def test_a_bad_new_profiles_file_keeps_the_last_good_one_and_is_counted(
    app: Flask, client: FlaskClient, profiles_file: Path
) -> None:
    store = app.extensions[EXTENSION].store
    good = store.current
    profiles_file.write_text(profiles_file.read_text().replace("maxGpus: 8", "maxGpus: lots", 1))
    assert store.check() is False
    assert store.current is good
    found = samples(client)
    assert found[("headroom_webhook_profile_reloads_total", (("result", "failure"),))] == 1
    assert found[("headroom_webhook_profiles_file_valid", ())] == 0
    assert client.get("/readyz").get_json()["fileValid"] is False
    # Still serving the old profiles: 8 GPUs are allowed by the default profile.
    body = client.post("/mutate", data=encode(review_body(gpu_pod(gpus="8")))).get_json()
    assert body["response"]["allowed"] is True
    profiles_file.write_text("profiles:\n  default: {maxGpus: 2}\n")
    assert store.check() is True
    assert store.current.profiles["default"].max_gpus == 2
    found = samples(client)
    assert found[("headroom_webhook_profile_reloads_total", (("result", "success"),))] == 1
    assert found[("headroom_webhook_profiles_file_valid", ())] == 1
    body = client.post("/mutate", data=encode(review_body(gpu_pod(gpus="8")))).get_json()
    assert body["response"]["allowed"] is False


def test_the_app_needs_a_profiles_file() -> None:
    with pytest.raises(TypeError, match="profiles"):
        WebhookConfig()  # type: ignore[call-arg]  # what a caller forgetting it gets


def test_the_app_reads_its_settings_from_its_config_not_the_environment(
    monkeypatch: pytest.MonkeyPatch, profiles_file: Path, tmp_path: Path
) -> None:
    # The variables the webhook once read: set, they must change nothing.
    monkeypatch.setenv("HEADROOM_WEBHOOK_PROFILES", str(tmp_path / "elsewhere.yaml"))
    monkeypatch.setenv("HEADROOM_WEBHOOK_POLL_SECONDS", "1")
    app = create_app(WebhookConfig(profiles=profiles_file, profile_poll_seconds=0))
    assert app.extensions[EXTENSION].store.path == profiles_file


def test_the_watcher_runs_between_start_and_stop_only(profiles_file: Path) -> None:
    app = create_app(WebhookConfig(profiles=profiles_file, profile_poll_seconds=0.05))
    store = app.extensions[EXTENSION].store
    assert not store.worker.started  # building the app starts no thread
    lifecycle = app.extensions[LIFECYCLE_KEY]
    lifecycle.start()
    try:
        assert store.worker.alive
    finally:
        lifecycle.stop()  # joins the thread
    assert store.worker.started and not store.worker.alive


def test_serving_a_review_imports_no_kubernetes_client(profiles_file: Path) -> None:
    # Without API access (no --kubeconfig, no --in-cluster) the request path must not even load
    # the client.
    code = (
        "import sys, json\n"
        "from pathlib import Path\n"
        "from webhook.app import create_app\n"
        "from tests.webhook.helpers import encode, gpu_pod, review_body\n"
        "from webhook.config import WebhookConfig\n"
        f"app = create_app(WebhookConfig(profiles=Path({str(profiles_file)!r}), "
        "profile_poll_seconds=0))\n"
        "r = app.test_client().post('/mutate', data=encode(review_body(gpu_pod())))\n"
        "assert r.status_code == 200 and 'patch' in r.get_json()['response']\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('kubernetes', 'urllib3')))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
        check=True,
        timeout=60,
    )
    assert result.stdout.strip() == "[]", result.stdout


# -- DRA pods: their claims are read before the review ---------------------------------------------

TEMPLATE_PATH = "/apis/resource.k8s.io/v1/namespaces/ns/resourceclaimtemplates/one-gpu"
FROM_TEMPLATE = {"name": "gpu", "resourceClaimTemplateName": "one-gpu"}


def with_reader(app: Flask, kube: FakeKube) -> FlaskClient:
    app.extensions[EXTENSION].claims = ClaimReader(kube, device_classes=("gpu.nvidia.com",))
    return app.test_client()


def test_a_dra_pods_template_is_read_and_counts(app: Flask) -> None:
    kube = FakeKube().on("GET", TEMPLATE_PATH, template("one-gpu", GPU_REQUEST))
    client = with_reader(app, kube)
    response = client.post("/mutate", data=encode(review_body(dra_pod(FROM_TEMPLATE))))
    assert kube.requests() == [f"GET {TEMPLATE_PATH}"]
    operations = patch_of(response.get_json()["response"])
    assert {"op": "add", "path": "/spec/schedulerName", "value": "headroom"} in operations
    assert not any(o["path"].startswith("/spec/affinity") for o in operations)


def test_pods_without_claims_or_not_opted_in_cost_no_read(app: Flask) -> None:
    kube = FakeKube()
    client = with_reader(app, kube)
    client.post("/mutate", data=encode(review_body(gpu_pod())))
    unlabelled = dra_pod(FROM_TEMPLATE)
    unlabelled["metadata"]["labels"] = {}
    client.post("/mutate", data=encode(review_body(unlabelled)))  # not opted in: ignored
    client.post("/mutate", data=b"{not json")
    assert kube.calls == []
    client.post("/mutate/namespace", data=encode(review_body(unlabelled)))
    assert kube.requests() == [f"GET {TEMPLATE_PATH}"]


def test_a_dra_pod_is_denied_by_a_webhook_without_api_access(client: FlaskClient) -> None:
    response = client.post("/mutate", data=encode(review_body(dra_pod(FROM_TEMPLATE))))
    answer = response.get_json()["response"]
    assert answer["allowed"] is False
    assert "started without API access" in answer["status"]["message"]
    assert requests_total(client, "denied") == 1
