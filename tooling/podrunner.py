"""A kubelet for Headroom's own pods: what `helm install` creates runs, as local processes.

The local control plane has no kubelet, so the chart's Deployments and DaemonSets would make
pods that never start. `PodRunner` registers a Node (or uses an existing one) with this host's
IPv4 address, watches the pods bound to it that are labelled `app.kubernetes.io/part-of:
headroom` (others are left alone), and for each does what a kubelet does: volumes (emptyDir,
configMap, secret, downwardAPI, projected with a serviceAccountToken from the TokenRequest API
bound to the pod, so each component runs with exactly its chart's RBAC), init containers in order
(native sidecars started, their startupProbe awaited), the containers from the image's programs
on this host (the venv's `headroom` for Headroom's image, the control plane's kube-scheduler for
its image), probes, restarts, the pod's status (podIP, conditions, container statuses: the
endpoint-slice controller then gives a Service its endpoints), and on deletion preStop, SIGTERM,
SIGKILL and the final delete. Each part is a module of its own: tooling/podrunner_*.py.

Fill-ins: a container here is a process on the host, not in its own filesystem and network, so
some values are replaced, and nothing else is (as tooling/shipped.py fills in addresses):

1. Mount paths: wherever `command`, `args`, an `env` value, an exec probe or a preStop hook names
   a volumeMount's path (/etc/headroom/tls/tls.crt), the volume's directory on this host stands
   in its place.
2. In-cluster access: clients read the account's token at fixed paths, so for a container that
   mounts the ServiceAccount directory a kubeconfig FILE is written naming the API server's
   address, the CA and the token (tokenFile) of that container's own volume (the pod's identity,
   nothing more), and given as the image's program takes one: `--in-cluster` becomes
   `--kubeconfig=FILE` and KUBECONFIG=FILE is set (Headroom); the file `--config` names is copied
   with clientConnection.kubeconfig set to FILE (kube-scheduler, which reads no other).
3. The image: its programs come from the venv's bin directory (Headroom) or the control plane's
   binaries (kube-scheduler); only the tags that match them run. PATH names those directories;
   the image's ENV (the Dockerfile's) is set; PYTHONPATH, when the runner has one, is passed on so
   a worktree's sources run; HOME is a directory of the container's own, so the host user's
   ~/.kube/config is never read.
4. The network: every pod has this host's address (podIP = hostIP, as a hostNetwork pod would),
   so two pods cannot listen on one port: a declared port already taken keeps the container
   waiting with reason PortInUse and a message saying so.
5. The GPU driver: a container that asks the NVIDIA runtime for it (NVIDIA_VISIBLE_DEVICES) gets
   `nvidia_env` (the fake NVML's library path and state), as that runtime mounts the driver's
   library into it.

Each container gets the pod's hostname in a UTS namespace of its own, as in a pod (the
scheduler's Lease holder, which the extender follows, is named by it), where this host allows
`unshare --uts`; elsewhere processes see the host's name. Not enforced, since processes run as
this user on this host: securityContext (runAsNonRoot, runAsUser, readOnlyRootFilesystem,
capabilities, seccomp), resources, readOnly mounts, emptyDir's medium and sizeLimit, hostPID
(every process sees the host's PIDs anyway). Not done: Service environment variables, image
pulls, grpc probes, postStart hooks, Succeeded/Failed phases, changes to a running pod's spec.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from headroom.worker import Worker
from kubeapi.client import ApiError, Conflict, EventStream, Kube, KubeApi, NotFound
from tooling.localcluster import LocalCluster
from tooling.podrunner_containers import Backoff
from tooling.podrunner_env import Image, JsonDict, Lookup
from tooling.podrunner_host import default_images, node_object, uts_unshare
from tooling.podrunner_pod import NodeContext, PodWorker, complete_deletion
from tooling.podrunner_volumes import TokenRequest, decode_data

log = logging.getLogger(__name__)
PART_OF = "app.kubernetes.io/part-of=headroom"


class PodRunner:
    """Runs the Headroom pods bound to `node_name` until closed (a context manager).

    `workdir` holds the pods' volumes, homes and kubeconfigs, and `logs/` with one file per
    container (`<namespace>_<pod>_<container>.log`). `node_labels` go on a Node it registers.
    """

    def __init__(
        self,
        kube: KubeApi,
        *,
        server_url: str,
        node_name: str,
        workdir: Path,
        host_ip: str,
        node_labels: Mapping[str, str] | None = None,
        node_capacity: Mapping[str, str] | None = None,
        nvidia_env: Mapping[str, str] | None = None,
        images: tuple[Image, ...] | None = None,
        backoff: Backoff | None = None,
        sync_seconds: float = 2.0,
    ) -> None:
        self.kube, self.node_name, self.workdir = kube, node_name, workdir
        self.node_labels = dict(node_labels or {})
        self.node_capacity = dict(node_capacity or {})
        self.host_ip = host_ip
        passed = {k: os.environ[k] for k in ("PYTHONPATH",) if os.environ.get(k)}
        self.ctx = NodeContext(
            kube=kube,
            host_ip=host_ip,
            workdir=workdir,
            server_url=server_url,
            images=images if images is not None else default_images(),
            lookup=Lookup(config_map=self._config_map, secret=self._secret),
            tokens=self._token,
            base_env=passed,
            nvidia_env=dict(nvidia_env or {}),
            unshare=uts_unshare(),
            backoff=backoff or Backoff(),
            sync_seconds=sync_seconds,
        )
        self.pods: dict[str, PodWorker] = {}  # by uid
        self.registered = False
        self._lock = threading.Lock()
        self._stream: EventStream | None = None
        self.watcher = Worker(self._watch_loop, name=f"podrunner {node_name}")

    @classmethod
    def for_cluster(cls, cluster: LocalCluster, **kwargs: Any) -> PodRunner:
        """A runner on `cluster` with its admin's credentials (the kubelet's own, here)."""
        from kubeapi.client import load_api_client  # noqa: PLC0415

        kube = Kube(load_api_client(str(cluster.kubeconfig)))
        return cls(kube, server_url=cluster.server_url, **kwargs)

    # -- lifecycle --------------------------------------------------------------------------------
    def __enter__(self) -> PodRunner:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._register_node()
        self.watcher.start()

    def close(self) -> None:
        """Stop watching, stop every pod's processes (no hooks, a short grace), and delete the
        Node if this runner registered it. The pods stay in the API as they were."""
        self.watcher.stopped.set()
        stream = self._stream
        if stream is not None:
            stream.close()
        self.watcher.stop(10)
        with self._lock:
            workers = list(self.pods.values())
        for pod in workers:
            pod.worker.stopped.set()
            pod.worker.wake()
        for pod in workers:
            pod.worker.stop(30)
        if self.registered:
            with contextlib.suppress(ApiError):
                self.kube.request("DELETE", f"/api/v1/nodes/{self.node_name}")

    def _register_node(self) -> None:
        body = node_object(
            self.node_name,
            host_ip=self.host_ip,
            labels=self.node_labels,
            capacity=self.node_capacity,
        )
        try:
            self.kube.request("POST", "/api/v1/nodes", body=body)
        except Conflict:
            log.info("node %s exists: using it", self.node_name)
            return
        self.registered = True

    # -- what the pods refer to -------------------------------------------------------------------
    def _config_map(self, namespace: str, name: str) -> dict[str, bytes] | None:
        obj = self._get(f"/api/v1/namespaces/{namespace}/configmaps/{name}")
        return None if obj is None else decode_data(obj, base64_key="binaryData", text_key="data")

    def _secret(self, namespace: str, name: str) -> dict[str, bytes] | None:
        obj = self._get(f"/api/v1/namespaces/{namespace}/secrets/{name}")
        return None if obj is None else decode_data(obj, base64_key="data", text_key=None)

    def _get(self, path: str) -> JsonDict | None:
        try:
            return self.kube.request("GET", path)
        except NotFound:
            return None

    def _token(self, request: TokenRequest) -> str:
        spec: JsonDict = {
            "expirationSeconds": request.expiration_seconds,
            "boundObjectRef": {
                "kind": "Pod",
                "apiVersion": "v1",
                "name": request.pod_name,
                "uid": request.pod_uid,
            },
        }
        if request.audience:
            spec["audiences"] = [request.audience]
        answer = self.kube.request(
            "POST",
            f"/api/v1/namespaces/{request.namespace}/serviceaccounts/"
            f"{request.service_account}/token",
            body={"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec},
        )
        token: str = answer["status"]["token"]
        return token

    # -- the watch --------------------------------------------------------------------------------
    def _watch_loop(self) -> None:
        query = {"fieldSelector": f"spec.nodeName={self.node_name}", "labelSelector": PART_OF}
        while not self.watcher.stopped.is_set():
            try:
                listing = self.kube.request("GET", "/api/v1/pods", query=query)
                self._relisted(listing["items"])
                self._stream = stream = self.kube.watch(
                    "/api/v1/pods",
                    query={
                        **query,
                        "watch": True,
                        "resourceVersion": listing["metadata"]["resourceVersion"],
                        "timeoutSeconds": 30,
                    },
                    read_timeout_seconds=45,
                )
                for event in stream:
                    if event["type"] == "ERROR":
                        break  # e.g. 410 Gone: list again
                    self._event(event["type"], event["object"])
            except ApiError as exc:
                if not self.watcher.stopped.is_set():
                    log.warning("podrunner %s: watch: %s", self.node_name, exc)
                    self.watcher.stopped.wait(1.0)
            self._reap()

    def _relisted(self, pods: list[JsonDict]) -> None:
        present = {p["metadata"]["uid"] for p in pods}
        with self._lock:
            vanished = [w for uid, w in self.pods.items() if uid not in present]
        for worker in vanished:
            worker.delete(gone=True)
        for pod in pods:
            self._event("MODIFIED", pod)

    def _event(self, kind: str, pod: JsonDict) -> None:
        self._reap()
        uid = pod["metadata"]["uid"]
        with self._lock:
            worker = self.pods.get(uid)
        if kind == "DELETED":
            if worker is not None:
                worker.delete(gone=True)
            return
        if worker is not None:
            worker.update(pod)
            return
        if pod["metadata"].get("deletionTimestamp"):
            complete_deletion(self.kube, pod)  # never ran here: nothing to stop
            return
        worker = PodWorker(pod, self.ctx)
        with self._lock:
            self.pods[uid] = worker
        worker.worker.start()

    def _reap(self) -> None:
        with self._lock:
            for uid, worker in list(self.pods.items()):
                if worker.worker.started and not worker.worker.alive:
                    del self.pods[uid]

    # -- for tests --------------------------------------------------------------------------------
    def describe(self) -> str:
        """Every pod's containers, states and log tails (print it when a test fails)."""
        with self._lock:
            workers = list(self.pods.values())
        head = (
            f"podrunner {self.node_name} ({self.host_ip}), {len(workers)} pod(s), "
            f"logs in {self.workdir / 'logs'}"
        )
        return "\n".join([head, *(w.describe() for w in workers)])
