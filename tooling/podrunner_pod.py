"""One pod on the podrunner's node: its volumes, its containers in the kubelet's order, its
status, and its end. A `PodWorker` owns a thread (the kubelet's pod worker) that loops:

- volumes set up and then re-synced every `sync_seconds` (a missing Secret keeps the pod in
  ContainerCreating, retried, as a failed mount does);
- init containers one at a time, in order: a regular one must exit 0 before the next starts; a
  native sidecar (restartPolicy Always) must be started (its startupProbe passed) and then keeps
  running beside the containers;
- then the containers; exits restarted per restartPolicy, probes run when due;
- the status patched whenever it changes.

On deletion it stops the containers as the kubelet does (preStop hook, SIGTERM, SIGKILL after the
grace period; sidecars after the containers) and completes the deletion (grace 0, uid
precondition). `close` (the podrunner stopping) stops them without hooks and leaves the pod.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from headroom.clock import format_time
from headroom.worker import Worker
from kubeapi.client import ApiError, KubeApi, NotFound
from tooling.podrunner_containers import DEFAULT_BACKOFF, Backoff, Container, Launch, which
from tooling.podrunner_env import (
    SERVICE_ACCOUNT_DIR,
    Image,
    JsonDict,
    Lookup,
    MountMap,
    SpecError,
    argv,
    config_flag,
    container_env,
    find_image,
    with_client_kubeconfig,
)
from tooling.podrunner_probes import Probe, translate
from tooling.podrunner_status import pod_status
from tooling.podrunner_volumes import TokenSource, Volumes

log = logging.getLogger(__name__)
SYSTEM_PATH = ("/usr/local/bin", "/usr/bin", "/bin")
PROBES = ("startup", "readiness", "liveness")
# Run by `unshare --uts` before the container's program: the pod's hostname, then the program.
_SET_HOSTNAME = 'hostname "$0" && exec "$@"'


@dataclass(frozen=True)
class NodeContext:
    """What every pod on the node shares: the host, the API, the images, the fill-ins."""

    kube: KubeApi
    host_ip: str
    workdir: Path
    server_url: str  # the API server, for the kubeconfigs that stand in for --in-cluster
    images: tuple[Image, ...]
    lookup: Lookup
    tokens: TokenSource
    base_env: Mapping[str, str]  # added to every container before the image's ENV
    # What the NVIDIA container runtime gives a container that asks for the driver
    # (NVIDIA_VISIBLE_DEVICES): here, the environment that loads the fake NVML.
    nvidia_env: Mapping[str, str] = field(default_factory=dict)
    # The `unshare` that gives each container a UTS namespace with the pod's hostname, as a
    # pod has; None where this host does not allow one (then processes see the host's name).
    unshare: str | None = None
    backoff: Backoff = DEFAULT_BACKOFF
    sync_seconds: float = 2.0
    step_seconds: float = 0.25


class PodWorker:
    def __init__(self, pod: JsonDict, ctx: NodeContext) -> None:
        meta = pod["metadata"]
        self.ctx, self.pod = ctx, pod
        self.uid: str = meta["uid"]
        self.key = f"{meta['namespace']}/{meta['name']}"
        self.dir = ctx.workdir / "pods" / f"{meta['namespace']}_{meta['name']}_{self.uid[:8]}"
        self.volumes = Volumes(pod, self.dir / "volumes", lookup=ctx.lookup, tokens=ctx.tokens)
        spec = pod["spec"]
        self.init = [
            Container(
                c, where=f"spec.initContainers[{i}]", sidecar=_sidecar(c), backoff=ctx.backoff
            )
            for i, c in enumerate(spec.get("initContainers") or [])
        ]
        self.containers = [
            Container(c, where=f"spec.containers[{i}]", sidecar=False, backoff=ctx.backoff)
            for i, c in enumerate(spec["containers"])
        ]
        self.sandbox_ready = False
        # What keeps it from running now, by source ("volumes", "round"), for `describe`; a
        # container's own is in its waiting message.
        self.problems: dict[str, str] = {}
        self.deleting = False
        self.gone = False  # deleted from the API already: nothing left to complete
        self._lock = threading.Lock()
        self._written: JsonDict | None = None
        self.worker = Worker(self._loop, name=f"pod {self.key}")

    # -- from the watch ---------------------------------------------------------------------------
    def update(self, pod: JsonDict) -> None:
        with self._lock:
            self.pod = self.volumes.pod = pod
        if pod["metadata"].get("deletionTimestamp"):
            self.delete(gone=False)

    def delete(self, *, gone: bool) -> None:
        self.deleting, self.gone = True, self.gone or gone
        self.worker.wake()

    # -- the loop ---------------------------------------------------------------------------------
    def _loop(self) -> None:
        next_sync = 0.0
        try:
            while not self.worker.stopped.is_set() and not self.deleting:
                try:
                    if time.monotonic() >= next_sync:
                        self._sync_volumes()
                        next_sync = time.monotonic() + self.ctx.sync_seconds
                    if self.sandbox_ready:
                        self._step()
                    self._write_status()
                    self.problems.pop("round", None)
                except Exception as exc:  # one bad round must not end the pod's thread
                    log.exception("pod %s", self.key)
                    self.problems["round"] = f"podrunner: {exc!r}"
                self.worker.woken.wait(self.ctx.step_seconds)
                self.worker.woken.clear()
        finally:
            self._terminate(graceful=self.deleting)
        if self.deleting and not self.gone:
            self._complete_deletion()

    def _sync_volumes(self) -> None:
        try:
            self.volumes.sync()
        except (SpecError, ApiError) as exc:
            self.problems["volumes"] = str(exc)
            if not self.sandbox_ready:
                for c in [*self.init, *self.containers]:
                    c.wait("ContainerCreating", f"MountVolume.SetUp failed: {exc}")
            return
        self.problems.pop("volumes", None)
        self.sandbox_ready = True

    def _step(self) -> None:
        policy = self.pod["spec"].get("restartPolicy", "Always")
        init_policy = "OnFailure" if policy in ("Always", "OnFailure") else "Never"
        for c in self.init:
            if not c.sidecar and c.exited and c.view.exit_code == 0:
                continue  # done: init containers are never run again
            self._tend(c, init_policy)
            if not (c.sidecar and c.ever_started):
                return  # the next one waits for this one to finish (a sidecar: to start)
        for c in self.containers:
            self._tend(c, policy)

    def _tend(self, c: Container, policy: str) -> None:
        if c.process is None:
            self._start(c, restart=False)
        elif c.check_exit():
            return
        elif c.exited:
            if c.may_restart(policy):
                self._start(c, restart=True)
        else:
            c.run_probes()

    def _start(self, c: Container, *, restart: bool) -> None:
        if time.monotonic() < c.restart_at:
            return
        try:
            launch, probes = self._launch(c)
        except (SpecError, ApiError) as exc:
            reason = exc.reason if isinstance(exc, SpecError) else "CreateContainerConfigError"
            c.wait(reason, str(exc))
            c.restart_at = time.monotonic() + self.ctx.backoff.initial_seconds
            return
        started = c.restart(launch, probes) if restart else c.start(launch, probes)
        if not started:  # refused (a port taken): the reason is in its status
            c.restart_at = time.monotonic() + self.ctx.backoff.initial_seconds

    # -- resolving a container --------------------------------------------------------------------
    def _launch(self, c: Container) -> tuple[Launch, dict[str, Probe]]:
        image = find_image(c.spec.get("image", ""), self.ctx.images, where=f"{c.where}.image")
        mounts = self._mounts(c)
        kubeconfig = self._kubeconfig(c, mounts)
        home = self.dir / "home" / c.name
        env = {
            "PATH": ":".join([*map(str, image.bin_dirs), *SYSTEM_PATH]),
            "HOME": str(home),
            "HOSTNAME": self.pod["spec"].get("hostname") or self.pod["metadata"]["name"],
            **self.ctx.base_env,
            **image.env,
        }
        own = container_env(self._with_ips(), c.spec, lookup=self.ctx.lookup, where=c.where)
        env.update({name: mounts.rewrite(value) for name, value in own.items()})
        if kubeconfig is not None:
            env["KUBECONFIG"] = str(kubeconfig)
        if env.get("NVIDIA_VISIBLE_DEVICES", "") not in ("", "void", "none"):
            env.update(self.ctx.nvidia_env)
        words = argv(c.spec, image, env=env, mounts=mounts, kubeconfig=kubeconfig)
        words[0] = which(words[0], env["PATH"], where=f"{c.where}.command")
        if image.config_file_access and kubeconfig is not None:
            words = self._fill_config_file(c, words, kubeconfig=kubeconfig)
        if self.ctx.unshare is not None:
            hostname = env["HOSTNAME"]
            words = [
                self.ctx.unshare,
                "--uts",
                "--",
                "/bin/sh",
                "-c",
                _SET_HOSTNAME,
                hostname,
                *words,
            ]
        probes = {
            kind: translate(
                c.spec[f"{kind}Probe"],
                c.spec,
                pod_ip=self.ctx.host_ip,
                mounts=mounts,
                where=f"{c.where}.{kind}Probe",
            )
            for kind in PROBES
            if c.spec.get(f"{kind}Probe")
        }
        hook = ((c.spec.get("lifecycle") or {}).get("preStop") or {}).get("exec") or {}
        pre_stop = tuple(mounts.rewrite(word) for word in hook.get("command") or [])
        log_path = self.ctx.workdir / "logs" / f"{self.key.replace('/', '_')}_{c.name}.log"
        return Launch(tuple(words), env, home, log_path, pre_stop), probes

    def _fill_config_file(self, c: Container, words: list[str], *, kubeconfig: Path) -> list[str]:
        """The fill-in for a component configured by file: a copy of the file its --config
        names, with the kubeconfig standing in for in-cluster access, in its place."""
        found = config_flag(words)
        if found is None:
            return words
        index, path = found
        try:
            config = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise SpecError(f"{c.where}.command", f"--config {path}: {exc}") from exc
        if not isinstance(config, dict):
            raise SpecError(f"{c.where}.command", f"--config {path}: not a YAML mapping")
        copy = self.dir / "configs" / c.name / Path(path).name
        copy.parent.mkdir(parents=True, exist_ok=True)
        copy.write_text(yaml.safe_dump(with_client_kubeconfig(config, kubeconfig)))
        return [*words[:index], words[index].replace(path, str(copy)), *words[index + 1 :]]

    def _mounts(self, c: Container) -> MountMap:
        names = {v["name"] for v in self.pod["spec"].get("volumes") or []}
        mounts: dict[str, Path] = {}
        for i, mount in enumerate(c.spec.get("volumeMounts") or []):
            if mount["name"] not in names:
                where = f"{c.where}.volumeMounts[{i}].name"
                raise SpecError(where, f"no volume {mount['name']!r} in the pod")
            host = self.volumes.path(mount["name"])
            mounts[mount["mountPath"]] = host / mount["subPath"] if mount.get("subPath") else host
        return MountMap(mounts)

    def _kubeconfig(self, c: Container, mounts: MountMap) -> Path | None:
        """The fill-in for in-cluster access: a kubeconfig naming the API server, with the token
        and CA the container has at the ServiceAccount path (so exactly the account's rights)."""
        account = mounts.host_path(SERVICE_ACCOUNT_DIR)
        if account is None:
            return None
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "current-context": "in-cluster",
            "clusters": [
                {
                    "name": "in-cluster",
                    "cluster": {
                        "server": self.ctx.server_url,
                        "certificate-authority": str(account / "ca.crt"),
                    },
                }
            ],
            "users": [{"name": "pod", "user": {"tokenFile": str(account / "token")}}],
            "contexts": [
                {"name": "in-cluster", "context": {"cluster": "in-cluster", "user": "pod"}}
            ],
        }
        path = self.dir / "kubeconfigs" / f"{c.name}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(config))
        return path

    def _with_ips(self) -> JsonDict:
        """The pod as its downward API sees it once this node has given it its IPs."""
        ip = [{"ip": self.ctx.host_ip}]
        status = {**(self.pod.get("status") or {}), "podIP": self.ctx.host_ip, "podIPs": ip}
        return {**self.pod, "status": {**status, "hostIP": self.ctx.host_ip, "hostIPs": ip}}

    # -- status and the end -----------------------------------------------------------------------
    def _write_status(self) -> None:
        status = pod_status(
            self._basis(),
            host_ip=self.ctx.host_ip,
            sandbox_ready=self.sandbox_ready,
            init=[c.view for c in self.init],
            containers=[c.view for c in self.containers],
            now=format_time(time.time()),
        )
        if status == self._written:
            return
        meta = self.pod["metadata"]
        try:
            self.ctx.kube.request(
                "PATCH",
                f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}/status",
                body={"metadata": {"uid": self.uid}, "status": status},
                content_type="application/strategic-merge-patch+json",
            )
        except NotFound:
            self.delete(gone=True)
            return
        self._written = status

    def _basis(self) -> JsonDict:
        """The pod with the status last written over the one the watch last delivered (which may
        lag behind it), conditions merged by type: their transition times then stay put."""
        with self._lock:
            pod = self.pod
        if self._written is None:
            return pod
        seen = pod.get("status") or {}
        conditions = {c["type"]: c for c in seen.get("conditions") or []}
        conditions.update({c["type"]: c for c in self._written["conditions"]})
        status = {**seen, **self._written, "conditions": list(conditions.values())}
        return {**pod, "status": status}

    def _terminate(self, *, graceful: bool) -> None:
        spec = self.pod["spec"]
        meta = self.pod["metadata"]
        grace = float(
            meta.get("deletionGracePeriodSeconds", spec.get("terminationGracePeriodSeconds", 30))
        )
        if not graceful:
            grace = min(grace, 10.0)
        threads = [
            threading.Thread(target=c.stop, kwargs={"grace_seconds": grace, "pre_stop": graceful})
            for c in self.containers
        ]
        for thread in threads:  # the containers stop together, as the kubelet stops them
            thread.start()
        for thread in threads:
            thread.join()
        for c in reversed(self.init):  # then the sidecars, last started first
            c.stop(grace_seconds=min(grace, 10.0), pre_stop=graceful)

    def _complete_deletion(self) -> None:
        complete_deletion(self.ctx.kube, self.pod)

    def describe(self) -> str:
        """Each container's state and its log's tail: what a failed test prints."""
        problems = "; ".join(self.problems.values())
        lines = [f"pod {self.key} (uid {self.uid})" + (f": {problems}" if problems else "")]
        for c in [*self.init, *self.containers]:
            v = c.view
            lines.append(
                f"  {c.name}: {v.state} {v.reason} ready={v.ready} restarts={v.restart_count}"
                + (f" message={v.message!r}" if v.message else "")
            )
            if c.process is not None:
                lines.append(f"    log {c.process.log_path}:")
                lines += [f"    | {line}" for line in c.process.log_tail(25).splitlines()]
        return "\n".join(lines)


def complete_deletion(kube: KubeApi, pod: JsonDict) -> None:
    """The kubelet's last word on a deleted pod: delete it now (grace 0), if it is still this
    pod (uid precondition)."""
    meta = pod["metadata"]
    with contextlib.suppress(ApiError):  # gone already, or another pod by that name by now
        kube.request(
            "DELETE",
            f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}",
            body={"gracePeriodSeconds": 0, "preconditions": {"uid": meta["uid"]}},
        )


def _sidecar(container: JsonDict) -> bool:
    return container.get("restartPolicy") == "Always"
