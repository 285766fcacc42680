"""A simulated kubelet for the demo's nodes, and the model-server stand-in each serving pod gets.

For every pod bound to a simulated node it does what a kubelet with the NVIDIA device plugin
would, as far as Headroom can see: gives the pod GPUs (shared mode: the ones the extender wrote
in `headroom.dev/assigned-gpus`; exclusive: free devices, as the device plugin allocates them; a
pod with DRA claims: the GPUs its allocated claims hold, as the DRA driver would prepare them),
starts its "processes" there (in the node's fake NVML state, with a `<proc-root>/<pid>/cgroup`
naming the pod, so the node agent attributes them), reports the pod Running with a loopback IP,
and computes `Ready` honestly: the containers started AND every readiness gate condition True
(the extender's `headroom.dev/gpu-ready` is one). A pod that declares container port 8000 gets an
HTTP server on `<podIP>:8000/metrics` exposing `vllm:num_requests_waiting`: the load board's
share of the current load for each Ready pod. Deleted pods are torn down and their deletion
completed; `finish(job)` ends a Job's pods (Succeeded).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import random
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CollectorRegistry, Gauge, generate_latest

from headroom import names
from headroom.demand import DemandError, GpuDemand, assigned_gpus
from headroom.podclaims import has_claims
from headroom.worker import Worker
from kubeapi.client import ApiError, Kube
from tooling.demo import dra
from tooling.demo.nodes import SimNode
from tooling.demo.podstatus import completed_status, running_status

log = logging.getLogger(__name__)
MODEL_PORT = 8000  # where the seed AIScaler's queue_depth scrapes
QUEUE_METRIC = "vllm:num_requests_waiting"


class LoadBoard:
    """The total queue depth the load driver sets; each Ready model pod reports an equal share."""

    def __init__(self) -> None:
        self.total = 0.0
        self.ready_pods = 0

    def share(self) -> float:
        return self.total / self.ready_pods if self.ready_pods else 0.0


class ModelServer:
    """One pod's model-server stand-in on `<ip>:8000`."""

    def __init__(self, ip: str, board: LoadBoard) -> None:
        registry = CollectorRegistry()
        gauge = Gauge(
            QUEUE_METRIC, "Requests waiting to be processed (demo stand-in).", registry=registry
        )
        gauge.set_function(board.share)

        def exposition() -> bytes:
            return generate_latest(registry)

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = exposition() if self.path == "/metrics" else b"not found\n"
                self.send_response(200 if self.path == "/metrics" else 404)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # a scrape a second per pod is not news

        self.httpd = ThreadingHTTPServer((ip, MODEL_PORT), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(
            target=self.httpd.serve_forever,
            name=f"model-{ip}",
            kwargs={"poll_interval": 0.2},
            daemon=True,
        )
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class IpPool:
    """Pod IPs on loopback, 127.N.x.y with N chosen at random so two demos do not meet."""

    def __init__(self) -> None:
        self.second = random.SystemRandom().randrange(64, 250)
        self.next_host = 1

    def take(self) -> str:
        self.next_host += 1
        n = self.next_host
        return f"127.{self.second}.{n // 250}.{n % 250 + 1}"


@dataclass
class RunningPod:
    uid: str
    namespace: str
    name: str
    node: str
    ip: str
    gpus: tuple[int, ...]
    memory_bytes: int  # per GPU
    shared: bool
    labels: dict[str, str]
    server: ModelServer | None = None
    ready: bool = False
    finished: bool = False


class Kubelet:
    def __init__(
        self,
        kube: Kube,
        nodes: dict[str, SimNode],
        board: LoadBoard,
        *,
        interval_seconds: float = 0.3,
    ) -> None:
        self.kube = kube
        self.nodes = nodes
        self.board = board
        self.interval_seconds = interval_seconds
        self.pods: dict[str, RunningPod] = {}  # by UID
        self.admission_failures: list[str] = []
        self._pool = IpPool()
        self._finish: set[str] = set()  # Job names whose pods should complete
        self._lock = threading.Lock()
        self.worker = Worker(self._run, name="kubelet")

    def start(self) -> None:
        self.worker.start()

    def stop(self) -> None:
        self.worker.stop(10)
        with self._lock:
            for uid in list(self.pods):
                self._teardown(uid)

    def finish(self, job: str) -> None:
        with self._lock:
            self._finish.add(job)

    def running(self) -> list[RunningPod]:
        with self._lock:
            return list(self.pods.values())

    def _run(self) -> None:
        while not self.worker.stopped.wait(self.interval_seconds):
            try:
                with self._lock:
                    self.sync()
            except ApiError as exc:  # the next pass retries, as a kubelet would
                log.info("kubelet: %s", exc)
            except Exception:
                log.exception("kubelet: sync failed")

    # -- one pass ------------------------------------------------------------------------------
    def sync(self) -> None:
        seen: set[str] = set()
        for pod in self.kube.request("GET", "/api/v1/pods")["items"]:
            meta, spec = pod["metadata"], pod.get("spec") or {}
            # Headroom's own pods there (the node agents) the demo runs as processes itself.
            if (
                spec.get("nodeName") not in self.nodes
                or meta.get("namespace") == names.SYSTEM_NAMESPACE
            ):
                continue
            uid = meta["uid"]
            seen.add(uid)
            phase = (pod.get("status") or {}).get("phase")
            if meta.get("deletionTimestamp"):
                self._teardown(uid)
                self._complete_deletion(pod)
            elif phase in ("Succeeded", "Failed"):
                self._teardown(uid)
            elif uid not in self.pods:
                self._admit(pod)
            elif (meta.get("labels") or {}).get("job-name") in self._finish:
                self._teardown(uid)
                self._patch_status(pod, completed_status(pod))
            else:
                self._update_ready(pod, self.pods[uid])
        for uid in set(self.pods) - seen:
            self._teardown(uid)
        self.board.ready_pods = sum(1 for p in self.pods.values() if p.ready and p.server)

    def _admit(self, pod: dict[str, Any]) -> None:
        meta, spec = pod["metadata"], pod["spec"]
        node = self.nodes[spec["nodeName"]]
        chosen: tuple[int, ...] | str = ()
        demand: GpuDemand | None = None
        if has_claims(pod):  # the DRA driver's part: the devices its allocated claims hold
            prepared = dra.prepare(self.kube, pod, node, dra.devices(self.kube))
            if prepared is None:
                return  # a claim not allocated yet: the next pass looks again
            demand, chosen = prepared if isinstance(prepared, tuple) else (None, prepared)
        else:
            try:
                demand = GpuDemand.from_pod(pod)
            except DemandError:
                demand = None
            if demand is not None:
                chosen = self._gpus_for(pod, node, demand)
        gpus: tuple[int, ...] = ()
        if chosen:
            if isinstance(chosen, str):
                self.admission_failures.append(f"{meta['namespace']}/{meta['name']}: {chosen}")
                self._patch_status(
                    pod,
                    {"phase": "Failed", "reason": "UnexpectedAdmissionError", "message": chosen},
                )
                return
            gpus = chosen
        memory = demand.memory_bytes if demand and demand.memory_bytes else 0
        if demand is not None and not memory:  # a whole GPU, no size declared: it fills it
            memory = node.group.gpu_memory_bytes
        for gpu in gpus:
            node.add_pod_process(gpu, memory, pod_uid=meta["uid"])
        running = RunningPod(
            uid=meta["uid"],
            namespace=meta["namespace"],
            name=meta["name"],
            node=node.name,
            ip="",
            gpus=gpus,
            memory_bytes=memory,
            shared=bool(demand and demand.shared),
            labels=dict(meta.get("labels") or {}),
        )
        running.ip, running.server = self._serve(pod)
        self.pods[meta["uid"]] = running
        self._update_ready(pod, running, force=True)

    def _gpus_for(
        self, pod: dict[str, Any], node: SimNode, demand: GpuDemand
    ) -> tuple[int, ...] | str:
        """The GPU indexes the pod gets, or why it cannot start."""
        if demand.shared:
            by_uuid = {node.gpu_uuid(i): i for i in range(node.group.gpus)}
            wanted = assigned_gpus(pod)
            if len(wanted) != demand.gpu_count or any(u not in by_uuid for u in wanted):
                return (
                    f"{names.ASSIGNED_GPUS_ANNOTATION} {','.join(wanted) or '(none)'} does "
                    f"not name {demand.gpu_count} GPU(s) of {node.name}"
                )
            return tuple(by_uuid[u] for u in wanted)
        # The device plugin: healthy devices no other exclusive pod holds; the sim prefers
        # untouched ones, then the roomiest (the extender assumes the same).
        taken = {
            g for p in self.pods.values() if p.node == node.name and not p.shared for g in p.gpus
        }
        free = [i for i in range(node.group.gpus) if node.healthy(i) and i not in taken]
        free.sort(key=lambda i: (node.used_bytes(i) > 0, node.used_bytes(i), i))
        if len(free) < demand.gpu_count:
            return (
                f"Allocate failed: requested {demand.gpu_count} {names.GPU_RESOURCE}, "
                f"{len(free)} available on {node.name}"
            )
        return tuple(sorted(free[: demand.gpu_count]))

    def _serve(self, pod: dict[str, Any]) -> tuple[str, ModelServer | None]:
        ports = [
            p.get("containerPort")
            for c in pod["spec"].get("containers") or []
            for p in c.get("ports") or []
        ]
        for _ in range(20):
            ip = self._pool.take()
            if MODEL_PORT not in ports:
                return ip, None
            try:
                return ip, ModelServer(ip, self.board)
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE:
                    raise
        raise OSError(f"no loopback address free for port {MODEL_PORT}")

    def _update_ready(
        self, pod: dict[str, Any], running: RunningPod, *, force: bool = False
    ) -> None:
        status = pod.get("status") or {}
        conditions = {c.get("type"): c.get("status") for c in status.get("conditions") or []}
        gates = [g.get("conditionType") for g in pod["spec"].get("readinessGates") or []]
        ready = all(conditions.get(g) == "True" for g in gates)
        current = conditions.get("Ready") == "True"
        if force or ready != current or status.get("phase") != "Running":
            self._patch_status(
                pod, running_status(pod, uid=running.uid, ip=running.ip, ready=ready, gates=gates)
            )
        running.ready = ready

    def _patch_status(self, pod: dict[str, Any], status: dict[str, Any]) -> None:
        meta = pod["metadata"]
        # Strategic merge: conditions merge by type, so the gate's own condition stays.
        self.kube.request(
            "PATCH",
            f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}/status",
            body={"metadata": {"uid": meta["uid"]}, "status": status},
            content_type="application/strategic-merge-patch+json",
        )

    def _complete_deletion(self, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        with contextlib.suppress(ApiError):  # already gone
            self.kube.request(
                "DELETE",
                f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}",
                body={"gracePeriodSeconds": 0, "preconditions": {"uid": meta["uid"]}},
            )

    def _teardown(self, uid: str) -> None:
        running = self.pods.pop(uid, None)
        if running is None:
            return
        self.nodes[running.node].remove_owner(uid)
        if running.server is not None:
            running.server.stop()
