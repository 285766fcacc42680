"""A real Kubernetes control plane on loopback, for the e2e tests, `make cluster-up` and the demo.

etcd, kube-apiserver and kube-controller-manager (kube-scheduler on request) of the versions in
`tooling/controlplane/versions.env`, built from Go modules by `tooling/controlplane/build.sh`,
run as child processes on free 127.0.0.1 ports, in one directory holding their own CA,
certificates, service-account key, logs and an admin kubeconfig. Nodes are plain Node objects: no
kubelet runs. The controller manager runs without the node lifecycle controller, so those Nodes
are not tainted unreachable.

Every process started is stopped by `stop()`; children also die with the process that started them
(PR_SET_PDEATHSIG) unless the cluster is started detached, as `up` does for use by hand.
"""

from __future__ import annotations

import json
import os
import ssl
import subprocess
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from tooling.clusterpki import kubeconfig_for, write_cluster_pki
from tooling.process import (
    ClusterError,
    Process,
    die_with_parent,
    free_port,
    http_get,
    secure_healthz,
    wait_for,
)

CACHE_DIR = Path(os.environ.get("HEADROOM_CACHE", Path.home() / ".cache" / "headroom"))
TOOLING = Path(__file__).resolve().parent.parent / "tooling" / "controlplane"
BUILD_SCRIPT = TOOLING / "build.sh"
BINARIES = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl")


def versions(env: Mapping[str, str] = os.environ) -> dict[str, str]:
    """KUBERNETES_VERSION and ETCD_VERSION: versions.env, each overridable from `env`."""
    found = {}
    for line in (TOOLING / "versions.env").read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and not key.startswith("#"):
            found[key.strip()] = env.get(key.strip()) or value.strip()
    return found


KUBERNETES_VERSION = versions()["KUBERNETES_VERSION"]
BIN_DIR = CACHE_DIR / "controlplane" / f"kubernetes-{KUBERNETES_VERSION}" / "bin"
ETCD = CACHE_DIR / "controlplane" / f"etcd-{versions()['ETCD_VERSION']}" / "bin" / "etcd"
SERVICE_CIDR = "10.96.0.0/24"  # allocated from, never contacted: nothing here routes to it


def ensure_binaries(bin_dir: Path = BIN_DIR) -> None:
    """Build the control plane with tooling/controlplane/build.sh unless it is cached."""
    if all((bin_dir / b).exists() for b in BINARIES) and ETCD.exists():
        return
    subprocess.run(["bash", str(BUILD_SCRIPT)], check=True)


class LocalCluster:
    """One control plane in `workdir`. Use as a context manager, or start()/stop()."""

    def __init__(
        self,
        workdir: Path,
        *,
        bin_dir: Path = BIN_DIR,
        detached: bool = False,
        apiserver_args: Sequence[str] = (),
        disabled_controllers: Sequence[str] = (),
        cpus: frozenset[int] | None = None,
    ) -> None:
        """`cpus`: run every process of the control plane on these CPUs only (benchmarks pin
        it apart from Headroom's processes, as separate machines would be)."""
        self.workdir = workdir
        self.cpus = cpus
        self.bin_dir = bin_dir
        self.detached = detached
        self.apiserver_args = list(apiserver_args)
        # Always off: the node lifecycle controller (no kubelet renews the Nodes' leases).
        self.disabled_controllers = ["node-lifecycle-controller", *disabled_controllers]
        self.processes: dict[str, Process] = {}
        self.etcd_port = free_port()
        self.etcd_peer_port = free_port()
        self.apiserver_port = free_port()
        self.kubeconfig = workdir / "admin.kubeconfig"

    @property
    def server_url(self) -> str:
        return f"https://127.0.0.1:{self.apiserver_port}"

    @property
    def etcd_url(self) -> str:
        return f"http://127.0.0.1:{self.etcd_port}"

    # -- lifecycle -------------------------------------------------------------------------------
    def __enter__(self) -> LocalCluster:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self, *, timeout_seconds: float = 120.0) -> None:
        try:
            self.workdir.mkdir(parents=True, exist_ok=True)
            write_cluster_pki(self.workdir, server_url=self.server_url, kubeconfig=self.kubeconfig)
            self.start_etcd(timeout_seconds=timeout_seconds)
            self.start_apiserver(timeout_seconds=timeout_seconds)
            self.start_controller_manager(timeout_seconds=timeout_seconds)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop every process this cluster started, newest first."""
        for name in reversed(list(self.processes)):
            self.processes.pop(name).stop()

    def _spawn(self, name: str, argv: Sequence[str]) -> Process:
        log_path = self.workdir / f"{name}.log"
        with log_path.open("ab") as log:
            popen = subprocess.Popen(
                list(argv),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.workdir,
                start_new_session=True,
                preexec_fn=self._prepare_child,  # noqa: PLW1509
            )
        process = Process(name, popen, log_path)
        self.processes[name] = process
        return process

    def _prepare_child(self) -> None:
        # Runs in the child between fork and exec.
        if not self.detached:
            die_with_parent()
        if self.cpus is not None:
            os.sched_setaffinity(0, self.cpus)

    def _await(self, process: Process, check: Callable[[], bool], timeout_seconds: float) -> None:
        try:
            wait_for(check, timeout_seconds=timeout_seconds, what=process.name, alive=process.alive)
        except ClusterError as exc:
            raise ClusterError(f"{exc}; log {process.log_path}:\n{process.log_tail()}") from exc

    # -- components ------------------------------------------------------------------------------
    def start_etcd(self, *, timeout_seconds: float = 60.0) -> None:
        peer = f"http://127.0.0.1:{self.etcd_peer_port}"
        process = self._spawn(
            "etcd",
            [
                str(ETCD),
                "--name=headroom",
                f"--data-dir={self.workdir / 'etcd-data'}",
                f"--listen-client-urls={self.etcd_url}",
                f"--advertise-client-urls={self.etcd_url}",
                f"--listen-peer-urls={peer}",
                f"--initial-advertise-peer-urls={peer}",
                f"--initial-cluster=headroom={peer}",
                "--logger=zap",
                "--log-level=warn",
            ],
        )
        self._await(
            process, lambda: b"true" in http_get(f"{self.etcd_url}/health"), timeout_seconds
        )

    def start_apiserver(self, *, timeout_seconds: float = 90.0) -> None:
        d = self.workdir
        process = self._spawn(
            "kube-apiserver",
            [
                str(self.bin_dir / "kube-apiserver"),
                f"--etcd-servers={self.etcd_url}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={self.apiserver_port}",
                # The `kubernetes` Service's endpoint would be this loopback address, which the
                # reconciler refuses; nothing here routes to that Service anyway.
                "--endpoint-reconciler-type=none",
                # Webhooks (and aggregated APIs) called through a Service go to one of its
                # endpoints, not its ClusterIP: nothing here routes a ClusterIP, but a pod's IP
                # (tooling/podrunner.py) is this host's.
                "--enable-aggregator-routing=true",
                f"--cert-dir={d}",
                f"--tls-cert-file={d / 'apiserver.crt'}",
                f"--tls-private-key-file={d / 'apiserver.key'}",
                f"--client-ca-file={d / 'ca.crt'}",
                f"--service-account-key-file={d / 'sa.pub'}",
                f"--service-account-signing-key-file={d / 'sa.key'}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                "--authorization-mode=Node,RBAC",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--allow-privileged=true",
                "--profiling=false",
                "--v=1",
                # Without kubelets nothing would lift the not-ready taint this plugin puts on new
                # Nodes; tests create Nodes with the conditions they want instead.
                "--disable-admission-plugins=TaintNodesByCondition",
                *self.apiserver_args,
            ],
        )
        self._await(
            process,
            lambda: http_get(f"{self.server_url}/readyz", context=self.ssl_context()) == b"ok",
            timeout_seconds,
        )

    def stop_apiserver(self) -> None:
        process = self.processes.pop("kube-apiserver", None)
        if process is not None:
            process.stop()

    def start_controller_manager(self, *, timeout_seconds: float = 90.0) -> None:
        d = self.workdir
        process = self._spawn(
            "kube-controller-manager",
            [
                str(self.bin_dir / "kube-controller-manager"),
                f"--kubeconfig={self.kubeconfig}",
                "--leader-elect=false",
                f"--service-account-private-key-file={d / 'sa.key'}",
                f"--root-ca-file={d / 'ca.crt'}",
                "--use-service-account-credentials=true",
                "--controllers=" + ",".join(["*", *(f"-{c}" for c in self.disabled_controllers)]),
                "--secure-port=0",
                "--v=1",
            ],
        )
        # Ready when its service-account controller has made the default namespace's account,
        # without which no pod can be created.
        self._await(
            process,
            lambda: self.kubectl("get", "serviceaccount", "default", check=False).returncode == 0,
            timeout_seconds,
        )

    def start_scheduler(
        self,
        config: Mapping[str, Any] | None = None,
        *,
        name: str = "kube-scheduler",
        kubeconfig: Path | None = None,
        hostname: str | None = None,
        timeout_seconds: float = 60.0,
    ) -> Process:
        """Start a kube-scheduler with `config` (a KubeSchedulerConfiguration, by default one with
        no leader election) talking to this cluster through `kubeconfig` (default: the admin's).

        The config is written as given; only `clientConnection.kubeconfig` is filled in when it
        names none. `hostname` runs the scheduler in its own UTS namespace with that host name, as
        a pod of that name would be: the scheduler's Lease holder is `<hostname>_<uuid>`.
        """
        doc = dict(
            config
            or {
                "apiVersion": "kubescheduler.config.k8s.io/v1",
                "kind": "KubeSchedulerConfiguration",
                "leaderElection": {"leaderElect": False},
            }
        )
        connection = dict(doc.get("clientConnection") or {})
        connection.setdefault("kubeconfig", str(kubeconfig or self.kubeconfig))
        doc["clientConnection"] = connection
        config_path = self.workdir / f"{name}.yaml"
        config_path.write_text(yaml.safe_dump(doc))
        port = free_port()
        argv = scheduler_command(
            self.bin_dir, config_path, port=port, cert_dir=self.workdir / f"{name}-certs"
        )
        if hostname is not None:
            argv = [
                "unshare",
                "--uts",
                "--",
                "sh",
                "-c",
                'hostname "$0" && exec "$@"',
                hostname,
                *argv,
            ]
        process = self._spawn(name, argv)
        process.port = port
        self._await(process, lambda: secure_healthz(port), timeout_seconds)
        return process

    def service_account_token(
        self,
        namespace: str,
        account: str,
        *,
        bound_pod: Mapping[str, str] | None = None,
        expiration_seconds: int = 24 * 3600,
    ) -> str:
        """A token for the ServiceAccount from the TokenRequest API, as the kubelet mounts one;
        `bound_pod` ({"name", "uid"}) binds it to that pod, whose node it then names."""
        spec: dict[str, Any] = {"expirationSeconds": expiration_seconds}
        if bound_pod is not None:
            spec["boundObjectRef"] = {"kind": "Pod", "apiVersion": "v1", **bound_pod}
        request = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec}
        result = self.kubectl(
            "create",
            "--raw",
            f"/api/v1/namespaces/{namespace}/serviceaccounts/{account}/token",
            "-f",
            "-",
            input_text=json.dumps(request),
        )
        token: str = json.loads(result.stdout)["status"]["token"]
        return token

    def token_kubeconfig(self, path: Path, token: str, *, user: str) -> Path:
        """Write a kubeconfig for this cluster that authenticates with `token`."""
        config = kubeconfig_for(
            self.server_url, (self.workdir / "ca.crt").read_bytes(), None, user=user
        )
        config["users"][0]["user"] = {"token": token}
        path.write_text(yaml.safe_dump(config))
        path.chmod(0o600)
        return path

    # -- use ---------------------------------------------------------------------------------------
    def kubectl(
        self,
        *args: str,
        check: bool = True,
        input_text: str | None = None,
        timeout_seconds: float = 60.0,
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(self.bin_dir / "kubectl"), f"--kubeconfig={self.kubeconfig}", *args],
            input=input_text,
            capture_output=True,
            text=True,
            timeout=timeout_seconds,
            check=False,
        )
        if check and result.returncode != 0:
            raise ClusterError(f"kubectl {' '.join(args)}: {result.stderr.strip()}")
        return result

    def ssl_context(self) -> ssl.SSLContext:
        """A client context that trusts this cluster's CA and presents the admin certificate."""
        context = ssl.create_default_context(cafile=str(self.workdir / "ca.crt"))
        context.load_cert_chain(self.workdir / "admin.crt", self.workdir / "admin.key")
        return context


def scheduler_command(bin_dir: Path, config_path: Path, *, port: int, cert_dir: Path) -> list[str]:
    """kube-scheduler with `config_path`, serving health and metrics on 127.0.0.1:`port` over
    HTTPS (a self-signed certificate in `cert_dir`): the only way a v1 configuration serves them."""
    return [
        str(bin_dir / "kube-scheduler"),
        f"--config={config_path}",
        "--bind-address=127.0.0.1",
        f"--secure-port={port}",
        f"--cert-dir={cert_dir}",
        # Tests read its queue from /metrics; on loopback only, so no token is asked for.
        "--authorization-always-allow-paths=/healthz,/readyz,/livez,/metrics",
        "--v=1",
    ]
