"""The demo's platform: a local control plane with Headroom installed from `manifests/`, run as
processes on loopback instead of pods.

What is applied as shipped: the CRDs, the `headroom-system` namespace, the ServiceAccounts and
RBAC of the node agent, the scheduler, the extender and the webhook. What is filled in, in memory
(the files stay as they are; `tooling.shipped`): the extender's address and the kubeconfig path in
the KubeSchedulerConfiguration, the webhook's URL on 127.0.0.1 in place of its Service and the
caBundle `headroom certs generate` wrote in the MutatingWebhookConfiguration, and the flags of each
process (loopback ports, a kubeconfig holding its own ServiceAccount's token, from the TokenRequest
API as a kubelet would mount it). The webhook reads `manifests/webhook/profiles.yaml` in place.
"""

from __future__ import annotations

import json
import ssl
import sys
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

from certs.generate import generate
from headroom import names
from kubeapi.client import ApiError, Kube, load_api_client
from tooling import shipped
from tooling.demo.processes import Supervisor
from tooling.localcluster import BIN_DIR, LocalCluster, scheduler_command
from tooling.process import Process, free_port, secure_healthz
from tooling.waiting import poll

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "manifests"
HEADROOM = Path(sys.executable).parent / "headroom"
LEASE = f"{names.SYSTEM_NAMESPACE}/headroom-scheduler"  # as the extender's Deployment says


class PlatformError(RuntimeError):
    """Something the demo starts did not come up; the message names it and its log."""


def wait_until(
    check: Callable[[], bool],
    *,
    what: str,
    timeout_seconds: float = 60.0,
    child: Process | None = None,
    interval_seconds: float = 0.2,
) -> None:
    """Poll with a deadline; fail early, with its log, if `child` exits."""

    def exited() -> bool:
        return child is not None and not child.alive()

    if poll(
        check,
        timeout_seconds=timeout_seconds,
        interval_seconds=interval_seconds,
        ignore=(ApiError, OSError),
        give_up=exited,
    ):
        return
    if child is not None and exited():
        raise PlatformError(
            f"{what}: {child.name} exited; its log {child.log_path}:\n{child.log_tail()}"
        )
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
        self.cluster.kubectl(
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            f"crd/{names.GPUNODE_CRD}",
            f"crd/{names.AISCALER_CRD}",
        )
        self.apply(
            MANIFESTS / "namespace.yaml",
            MANIFESTS / "nodeagent" / "serviceaccount.yaml",
            MANIFESTS / "nodeagent" / "rbac.yaml",
            MANIFESTS / "nodeagent" / "admission-policy.yaml",
            MANIFESTS / "extender" / "rbac.yaml",
            MANIFESTS / "webhook" / "serviceaccount.yaml",
            MANIFESTS / "webhook" / "rbac.yaml",
        )

    # -- identities ----------------------------------------------------------------------------
    def token_kubeconfig(self, account: str) -> Path:
        """A kubeconfig with a token of the ServiceAccount, as its pod would have it mounted."""
        token = self.cluster.service_account_token(names.SYSTEM_NAMESPACE, account)
        return self.cluster.token_kubeconfig(
            self.workdir / f"{account}.kubeconfig", token, user=account
        )

    def agent_kubeconfig(self, node: str) -> Path:
        """A kubeconfig for the node agent on `node`, with a token bound to its DaemonSet pod
        there (a pod object on that node, which the demo runs as a process): the admission policy
        lets it write that node's GPUNode only."""
        pod = self.kube.request(
            "POST",
            f"/api/v1/namespaces/{names.SYSTEM_NAMESPACE}/pods",
            body={
                "metadata": {"name": f"headroom-nodeagent-{node}"},
                "spec": {
                    "nodeName": node,
                    "serviceAccountName": "headroom-nodeagent",
                    "containers": [{"name": "agent", "image": "headroom:demo"}],
                },
            },
        )
        token = self.cluster.service_account_token(
            names.SYSTEM_NAMESPACE,
            "headroom-nodeagent",
            bound_pod={"name": pod["metadata"]["name"], "uid": pod["metadata"]["uid"]},
        )
        return self.cluster.token_kubeconfig(
            self.workdir / f"nodeagent-{node}.kubeconfig", token, user="headroom-nodeagent"
        )

    # -- the webhook -----------------------------------------------------------------------------
    def start_webhook(self) -> None:
        certs = self.workdir / "certs"
        generate(
            certs,
            service="headroom-webhook",
            namespace=names.SYSTEM_NAMESPACE,
            ip_addresses=["127.0.0.1"],
            force=True,
        )
        self.webhook_port = free_port()
        child = self.supervisor.start(
            "webhook",
            [
                str(HEADROOM),
                "webhook",
                "--profiles",
                str(MANIFESTS / "webhook" / "profiles.yaml"),
                f"--bind=127.0.0.1:{self.webhook_port}",
                f"--certfile={certs / 'tls.crt'}",
                f"--keyfile={certs / 'tls.key'}",
                f"--kubeconfig={self.token_kubeconfig('headroom-webhook')}",
                "--workers=1",
                "--threads=4",
                "--no-access-log",
            ],
        )
        context = ssl.create_default_context(cafile=str(certs / "ca.crt"))
        wait_until(
            lambda: (
                _get(f"https://127.0.0.1:{self.webhook_port}/healthz", context=context) is not None
            ),
            what="the webhook",
            child=child,
        )
        configuration = shipped.webhook_configuration(
            base_url=f"https://127.0.0.1:{self.webhook_port}",
            ca_bundle=(certs / "cabundle.txt").read_text().strip(),
        )
        self.cluster.kubectl("apply", "-f", "-", input_text=json.dumps(configuration))

    def await_mutation(self, namespace: str) -> None:
        """The API server picks a new webhook configuration up asynchronously: probe it with a
        dry-run pod until the webhook's annotation comes back."""
        probe = {
            "metadata": {
                "name": "probe",
                "labels": {names.MANAGED_LABEL: "true"},
                "annotations": {names.GPU_MEMORY_ANNOTATION: "1Gi"},
            },
            "spec": {"containers": [{"name": "c", "image": "example.invalid/probe"}]},
        }

        def mutated() -> bool:
            pod = self.kube.request(
                "POST", f"/api/v1/namespaces/{namespace}/pods", body=probe, query={"dryRun": "All"}
            )
            return names.MUTATED_BY_ANNOTATION in (pod["metadata"].get("annotations") or {})

        wait_until(mutated, what="the webhook registered with the API server")

    # -- the scheduler and its extender ---------------------------------------------------------
    def start_scheduler(self) -> None:
        self.extender_port = free_port()
        health_port = free_port()
        config = shipped.scheduler_config(
            extender_url=f"http://127.0.0.1:{self.extender_port}",
            kubeconfig=self.token_kubeconfig("headroom-scheduler"),
        )
        path = self.workdir / "kube-scheduler-config.yaml"
        path.write_text(yaml.safe_dump(config))
        child = self.supervisor.start(
            "kube-scheduler",
            scheduler_command(
                BIN_DIR, path, port=health_port, cert_dir=self.workdir / "kube-scheduler-certs"
            ),
        )
        wait_until(
            lambda: secure_healthz(health_port), what="the headroom kube-scheduler", child=child
        )

    def start_extender(self) -> None:
        child = self.supervisor.start(
            "extender",
            [
                str(HEADROOM),
                "extender",
                f"--bind=127.0.0.1:{self.extender_port}",
                f"--kubeconfig={self.token_kubeconfig('headroom-extender')}",
                f"--leader-lease={LEASE}",
                "--no-access-log",
            ],
        )
        wait_until(
            lambda: (
                b"headroom_extender_leader 1.0"
                in (_get(f"http://127.0.0.1:{self.extender_port}/metrics") or b"")
            ),
            what="the extender ready and leading",
            child=child,
            timeout_seconds=90,
        )

    def create_namespace(self, name: str) -> None:
        self.kube.request("POST", "/api/v1/namespaces", body={"metadata": {"name": name}})
        # ServiceAccount admission refuses pods until the namespace's default account exists.
        wait_until(
            lambda: bool(
                self.kube.request("GET", f"/api/v1/namespaces/{name}/serviceaccounts/default")
            ),
            what=f"namespace {name}'s default ServiceAccount",
        )


def start_control_plane(workdir: Path, supervisor: Supervisor) -> Platform:
    cluster = LocalCluster(workdir / "cluster")
    cluster.start()
    return Platform(
        workdir=workdir,
        cluster=cluster,
        supervisor=supervisor,
        kube=Kube(load_api_client(str(cluster.kubeconfig))),
    )


def _get(url: str, *, context: ssl.SSLContext | None = None) -> bytes | None:
    try:
        with urllib.request.urlopen(url, timeout=2, context=context) as response:  # noqa: S310
            body: bytes = response.read()
            return body
    except OSError:
        return None
