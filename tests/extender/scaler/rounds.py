"""AIScaler rounds against stand-ins: a Prometheus that answers each instant query with a fixed
value (or holds its answer, as a slow one), and a FakeKube serving Deployments, their /scale and
the AIScalers' status, for tests/extender/scaler/test_controller.py and bench/scaler_reads.py."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from headroom import names
from tests.kubeapi.fake import FakeKube
from tests.waiting import wait_for
from tooling.process import free_port

DEPLOYMENTS = "/apis/apps/v1/namespaces/ml/deployments"


class Server(ThreadingHTTPServer):
    # A listen backlog of 5 (the default) drops connections when 16 readers arrive at once, and
    # the kernel retries a dropped one a second later: a stand-in artefact, not the controller's.
    request_queue_size = 128


def answer(handler: BaseHTTPRequestHandler, value: float) -> None:
    """Prometheus' answer to an instant query: one series of `value`."""
    body = json.dumps(
        {
            "status": "success",
            "data": {
                "resultType": "vector",
                "result": [{"metric": {}, "value": [time.time(), str(value)]}],
            },
        }
    ).encode()
    handler.send_response(200)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


class Prometheus:
    """A stand-in answering every instant query with `value`; while `hold` is clear it does not
    answer (a Prometheus that is slow)."""

    def __init__(self, value: float) -> None:
        self.hold = threading.Event()
        self.hold.set()
        holder = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                holder.hold.wait(10)
                answer(self, value)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.hold.set()
        self.httpd.shutdown()
        self.httpd.server_close()


class PrometheusProcess:
    """The same stand-in in a process of its own, answering after `delay_seconds`: a benchmark
    then measures the controller, not the stand-in's share of its interpreter."""

    def __init__(self, value: float, *, delay_seconds: float = 0.0) -> None:
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        args = [str(port), str(value), str(delay_seconds)]
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.extender.scaler.rounds", *args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(lambda: _answers(self.url), timeout_seconds=30, message="a stand-in Prometheus")

    def close(self) -> None:
        self.process.kill()
        self.process.wait(10)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/api/v1/query?query=up", timeout=10):
            return True
    except OSError:
        return False


def _serve(port: int, value: float, delay_seconds: float) -> None:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            time.sleep(delay_seconds)  # a slow Prometheus, by design: not synchronisation
            answer(self, value)

        def log_message(self, *args: object) -> None:
            pass

    Server(("127.0.0.1", port), Handler).serve_forever()


def aiscaler(name: str, server: str) -> dict[str, Any]:
    metric = {
        "type": "prometheus",
        "query": "sum(queue)",
        "serverAddress": server,
        "target": {"type": "AverageValue", "averageValue": 10},
    }
    return {
        "metadata": {"name": name, "namespace": "ml", "uid": f"uid-{name}", "generation": 1},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicas": 1,
            "maxReplicas": 10,
            "metrics": [metric],
            "feasibility": {"mode": "Observe"},
        },
    }


def cluster(*targets: str) -> FakeKube:
    kube = FakeKube()
    kube.on("GET", "/apis/apps/v1", {"resources": [{"name": "deployments", "kind": "Deployment"}]})
    kube.on("GET", "/apis/autoscaling/v2/namespaces/ml/horizontalpodautoscalers", {"items": []})
    kube.on("POST", "/api/v1/namespaces/ml/events", {})
    for name in targets:
        path = f"{DEPLOYMENTS}/{name}"
        scale = {"spec": {"replicas": 1}, "status": {"selector": f"app={name}"}}
        kube.on("GET", f"{path}/scale", scale)
        kube.on("PATCH", f"{path}/scale", {})
        kube.on("GET", path, {"spec": {"template": {"metadata": {}, "spec": {"containers": []}}}})
        kube.on(
            "PATCH",
            f"/apis/{names.GROUP_VERSION}/namespaces/ml/{names.AISCALER_PLURAL}/{name}/status",
            {},
        )
    return kube


def running(name: str) -> dict[str, Any]:
    """The target's one replica, Ready (as the pod cache holds it)."""
    return {
        "metadata": {"name": f"{name}-0", "namespace": "ml", "uid": name, "labels": {"app": name}},
        "spec": {"nodeName": "n1"},
        "status": {
            "phase": "Running",
            "podIP": "10.0.0.1",
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }


def scaled(kube: FakeKube, name: str) -> list[int]:
    return [
        c.body["spec"]["replicas"]
        for c in kube.calls
        if c.method == "PATCH" and c.path == f"{DEPLOYMENTS}/{name}/scale"
    ]


if __name__ == "__main__":
    _serve(int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]))
