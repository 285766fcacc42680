"""The demo's platform: a local control plane with Headroom installed from `manifests/`, adapted to
processes on loopback instead of pods.

What is applied as shipped: the CRDs, the `headroom-system` namespace, the ServiceAccounts and
RBAC of the node agent, the scheduler and the extender. What is adapted, in memory (the files
stay as they are): the KubeSchedulerConfiguration (1.20 reads `v1beta1`; the extender's port;
the health endpoint on loopback), the MutatingWebhookConfiguration (a URL on 127.0.0.1 instead
of the Service, with the caBundle `headroom certs generate` wrote), and the flags of each process
(loopback ports, a kubeconfig holding its own ServiceAccount's token instead of a mounted one).
The webhook reads `manifests/webhook/profiles.yaml` in place.
"""

from __future__ import annotations

import base64
import json
import ssl
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

from certs.generate import generate
from headroom import names
from headroom.demo.processes import Child, Supervisor
from headroom.kube import ApiError, Kube, load_api_client
from headroom.localcluster import BIN_DIR, LocalCluster, free_port

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "manifests"
HEADROOM = Path(sys.executable).parent / "headroom"
LEASE = f"{names.SYSTEM_NAMESPACE}/headroom-scheduler"  # as the extender's Deployment says


class PlatformError(RuntimeError):
    """Something the demo starts did not come up; the message names it and its log."""


def wait_until(check: Callable[[], bool], *, what: str, timeout_seconds: float = 60.0,
               child: Child | None = None, interval_seconds: float = 0.2) -> None:
    """Poll with a deadline; fail early, with its log, if `child` exits."""
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        if child is not None and not child.alive():
            raise PlatformError(f"{what}: {child.name} exited; its log {child.log_path}:\n"
                                f"{child.log_tail()}")
        try:
            if check():
                return
        except (ApiError, OSError):
            pass
        time.sleep(interval_seconds)
    tail = f"; its log {child.log_path}:\n{child.log_tail()}" if child is not None else ""
    raise PlatformError(f"{what}: not within {timeout_seconds:.0f}s{tail}")


@dataclass
class Platform:
    workdir: Path
    cluster: LocalCluster
    supervisor: Supervisor
    kube: Kube  # the admin's: what the demo itself (the simulated kubelet, the view) uses
    extender_port: int = 0
    webhook_port: int = 0

    @property
    def kubeconfig(self) -> Path:
        return self.cluster.kubeconfig

    def apply(self, *paths: Path) -> None:
        args = [arg for p in paths for arg in ("-f", str(p))]
        self.cluster.kubectl("apply", *args)

    def install(self) -> None:
        """CRDs, namespace, ServiceAccounts and RBAC, from manifests/ as shipped."""
        self.apply(MANIFESTS / "crds")
        self.cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s",
                             f"crd/{names.GPUNODE_CRD}", f"crd/{names.AISCALER_CRD}")
        self.apply(MANIFESTS / "namespace.yaml", MANIFESTS / "nodeagent" / "serviceaccount.yaml",
                   MANIFESTS / "nodeagent" / "rbac.yaml", MANIFESTS / "extender" / "rbac.yaml")

    # -- identities ----------------------------------------------------------------------------
    def token_kubeconfig(self, account: str) -> Path:
        """A kubeconfig with the ServiceAccount's token, as its pod would have it mounted."""
        token: list[str] = []

        def read() -> bool:
            secrets = self.kube.request(
                "GET", f"/api/v1/namespaces/{names.SYSTEM_NAMESPACE}/secrets",
                query={"fieldSelector": "type=kubernetes.io/service-account-token"})
            for secret in secrets["items"]:
                annotations = secret["metadata"].get("annotations") or {}
                data = secret.get("data") or {}
                if annotations.get("kubernetes.io/service-account.name") == account and \
                        data.get("token"):
                    token.append(base64.b64decode(data["token"]).decode())
                    return True
            return False

        wait_until(read, what=f"the token of ServiceAccount {account}")
        ca = base64.b64encode((self.cluster.workdir / "ca.crt").read_bytes()).decode()
        path = self.workdir / f"{account}.kubeconfig"
        path.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": account,
            "clusters": [{"name": "demo", "cluster": {"server": self.cluster.server_url,
                                                      "certificate-authority-data": ca}}],
            "users": [{"name": account, "user": {"token": token[0]}}],
            "contexts": [{"name": account, "context": {"cluster": "demo", "user": account}}]}))
        path.chmod(0o600)
        return path

    # -- the webhook -----------------------------------------------------------------------------
    def start_webhook(self) -> None:
        certs = self.workdir / "certs"
        generate(certs, service="headroom-webhook", namespace=names.SYSTEM_NAMESPACE,
                 ip_addresses=["127.0.0.1"], force=True)
        self.webhook_port = free_port()
        child = self.supervisor.start("webhook", [
            str(HEADROOM), "webhook", "--profiles", str(MANIFESTS / "webhook" / "profiles.yaml"),
            f"--bind=127.0.0.1:{self.webhook_port}", f"--certfile={certs / 'tls.crt'}",
            f"--keyfile={certs / 'tls.key'}", "--workers=1", "--threads=4", "--no-access-log"])
        context = ssl.create_default_context(cafile=str(certs / "ca.crt"))
        wait_until(lambda: _get(f"https://127.0.0.1:{self.webhook_port}/healthz",
                                context=context) is not None, what="the webhook", child=child)
        shipped = yaml.safe_load(
            (MANIFESTS / "webhook" / "mutatingwebhookconfiguration.yaml").read_text())
        for hook in shipped["webhooks"]:
            hook["clientConfig"] = {"url": f"https://127.0.0.1:{self.webhook_port}/mutate",
                                    "caBundle": (certs / "cabundle.txt").read_text().strip()}
        self.cluster.kubectl("apply", "-f", "-", input_text=json.dumps(shipped))

    def await_mutation(self, namespace: str) -> None:
        """The API server picks a new webhook configuration up asynchronously: probe it with a
        dry-run pod until the webhook's annotation comes back."""
        probe = {"metadata": {"name": "probe", "labels": {names.MANAGED_LABEL: "true"},
                              "annotations": {names.GPU_MEMORY_ANNOTATION: "1Gi"}},
                 "spec": {"containers": [{"name": "c", "image": "example.invalid/probe"}]}}

        def mutated() -> bool:
            pod = self.kube.request("POST", f"/api/v1/namespaces/{namespace}/pods", body=probe,
                                    query={"dryRun": "All"})
            return names.MUTATED_BY_ANNOTATION in (pod["metadata"].get("annotations") or {})

        wait_until(mutated, what="the webhook registered with the API server")

    # -- the scheduler and its extender ---------------------------------------------------------
    def start_scheduler(self) -> None:
        self.extender_port = free_port()
        health_port = free_port()
        config = yaml.safe_load(
            (MANIFESTS / "extender" / "kube-scheduler-config.yaml").read_text())
        config["apiVersion"] = "kubescheduler.config.k8s.io/v1beta1"  # what 1.20 reads
        config["clientConnection"] = {
            "kubeconfig": str(self.token_kubeconfig("headroom-scheduler"))}
        config["healthzBindAddress"] = config["metricsBindAddress"] = \
            f"127.0.0.1:{health_port}"
        config["extenders"][0]["urlPrefix"] = f"http://127.0.0.1:{self.extender_port}"
        path = self.workdir / "kube-scheduler-config.yaml"
        path.write_text(yaml.safe_dump(config))
        child = self.supervisor.start("kube-scheduler", [
            str(BIN_DIR / "kube-scheduler"), f"--config={path}", "--secure-port=0", "--v=1"])
        wait_until(lambda: _get(f"http://127.0.0.1:{health_port}/healthz") == b"ok",
                   what="the headroom kube-scheduler", child=child)

    def start_extender(self) -> None:
        child = self.supervisor.start("extender", [
            str(HEADROOM), "extender", f"--bind=127.0.0.1:{self.extender_port}",
            f"--kubeconfig={self.token_kubeconfig('headroom-extender')}",
            f"--leader-lease={LEASE}", "--no-access-log"])
        wait_until(lambda: b"headroom_extender_leader 1.0" in (
            _get(f"http://127.0.0.1:{self.extender_port}/metrics") or b""),
            what="the extender ready and leading", child=child, timeout_seconds=90)

    def create_namespace(self, name: str) -> None:
        self.kube.request("POST", "/api/v1/namespaces", body={"metadata": {"name": name}})

        def has_token() -> bool:  # 1.20 admits pods once the default account has its token
            account = self.kube.request(
                "GET", f"/api/v1/namespaces/{name}/serviceaccounts/default")
            return bool(account.get("secrets"))

        wait_until(has_token, what=f"namespace {name}'s default ServiceAccount token")


def start_control_plane(workdir: Path, supervisor: Supervisor) -> Platform:
    cluster = LocalCluster(workdir / "cluster")
    cluster.start()
    return Platform(workdir=workdir, cluster=cluster, supervisor=supervisor,
                    kube=Kube(load_api_client(str(cluster.kubeconfig))))


def _get(url: str, *, context: ssl.SSLContext | None = None) -> bytes | None:
    try:
        with urllib.request.urlopen(url, timeout=2, context=context) as response:  # noqa: S310
            body: bytes = response.read()
            return body
    except OSError:
        return None
