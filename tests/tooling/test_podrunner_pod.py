"""One pod run by the podrunner's pod worker, with real processes and the fake API: init
containers in order, a native sidecar's startup probe holding the containers back, the fill-ins
(mount paths, the kubeconfig for --in-cluster), readiness, restarts, a taken port, and deletion
(preStop, then the final delete)."""

from __future__ import annotations

import json
import socket
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.kubeapi.fake import Call, FakeKube
from tests.waiting import wait_for
from tooling.podrunner_containers import Backoff
from tooling.podrunner_env import Image, Lookup
from tooling.podrunner_host import uts_unshare
from tooling.podrunner_pod import NodeContext, PodWorker
from tooling.podrunner_volumes import TokenRequest
from tooling.process import free_port

pytestmark = pytest.mark.server

PYTHON = Image(repository="test/python", tag="1", bin_dirs=(Path(sys.executable).parent,))
POD_PATH = "/api/v1/namespaces/ns/pods/p"
SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


def py(code: str) -> list[str]:
    return ["python3", "-c", code]


class Api:
    """The fake API with the pod's status and delete routes; the last status written."""

    def __init__(self) -> None:
        self.kube = FakeKube()
        self.status: dict[str, Any] = {}
        self.kube.on("PATCH", f"{POD_PATH}/status", self._patch)
        self.kube.on("DELETE", POD_PATH, lambda call: {})

    def _patch(self, call: Call) -> dict[str, Any]:
        assert call.content_type == "application/strategic-merge-patch+json"
        assert call.body["metadata"] == {"uid": "uid-1"}
        self.status = call.body["status"]
        return {}

    def container(self, name: str, *, init: bool = False) -> dict[str, Any]:
        key = "initContainerStatuses" if init else "containerStatuses"
        found: list[dict[str, Any]] = [c for c in self.status.get(key) or [] if c["name"] == name]
        assert len(found) == 1, self.status
        return found[0]

    def condition(self, kind: str) -> str:
        return next(
            (c["status"] for c in self.status.get("conditions") or [] if c["type"] == kind), ""
        )


@pytest.fixture
def api() -> Api:
    return Api()


def context(api: Api, workdir: Path) -> NodeContext:
    secrets = {
        ("ns", "creds"): {"password": b"s3cret"},
        ("ns", "config"): {"config.yaml": b"kind: KubeSchedulerConfiguration\n"},
    }

    def token(request: TokenRequest) -> str:
        return f"token-for-{request.service_account}-{request.pod_name}"

    return NodeContext(
        kube=api.kube,
        host_ip="127.0.0.1",
        workdir=workdir,
        server_url="https://127.0.0.1:6443",
        images=(PYTHON,),
        lookup=Lookup(
            config_map=lambda ns, n: {"ca.crt": b"CA"} if n == "kube-root-ca.crt" else None,
            secret=lambda ns, n: secrets.get((ns, n)),
        ),
        tokens=token,
        base_env={},
        backoff=Backoff(initial_seconds=0.2, max_seconds=1.0),
        sync_seconds=0.5,
        step_seconds=0.05,
    )


def pod(*, containers: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "p", "namespace": "ns", "uid": "uid-1"},
        "spec": {
            "serviceAccountName": "web",
            "containers": containers,
            "terminationGracePeriodSeconds": 5,
            "volumes": [
                {"name": "data", "emptyDir": {}},
                {"name": "creds", "secret": {"secretName": "creds"}},
            ],
            **spec,
        },
    }


@pytest.fixture
def run(api: Api, tmp_path: Path) -> Iterator[list[PodWorker]]:
    started: list[PodWorker] = []
    yield started
    for worker in started:
        worker.worker.stop(30)


def start(run: list[PodWorker], api: Api, tmp_path: Path, spec: dict[str, Any]) -> PodWorker:
    worker = PodWorker(spec, context(api, tmp_path))
    run.append(worker)
    worker.worker.start()
    return worker


def test_init_containers_then_a_started_sidecar_then_the_container_ready(
    api: Api, tmp_path: Path, run: list[PodWorker]
) -> None:
    port = free_port()
    data = {"name": "data", "mountPath": "/data"}
    spec = pod(
        initContainers=[
            {
                "name": "setup",
                "image": "test/python:1",
                "command": py("open('/data/order', 'a').write('setup ')"),
                "volumeMounts": [data],
            },
            {
                "name": "sidecar",
                "image": "test/python:1",
                "restartPolicy": "Always",
                # Ready to others only a moment after it starts: the startup probe waits for it.
                "command": py(
                    "import time; time.sleep(1); open('/data/order', 'a').write('sidecar '); "
                    "open('/data/up', 'w').write('1'); time.sleep(600)"
                ),
                "startupProbe": {
                    "exec": {"command": ["test", "-s", "/data/up"]},
                    "periodSeconds": 1,
                },
                "volumeMounts": [data],
            },
        ],
        containers=[
            {
                "name": "server",
                "image": "test/python:1",
                "command": py(
                    "import http.server, os, sys; "
                    "open('/data/order', 'a').write('server'); "
                    "open('/data/env', 'w').write("
                    "' '.join([os.environ['NAME'], os.environ['PW'], sys.argv[1]])); "
                    "http.server.ThreadingHTTPServer(('0.0.0.0', int(os.environ['PORT'])), "
                    "http.server.SimpleHTTPRequestHandler).serve_forever()"
                ),
                "args": ["/etc/creds/password"],
                "env": [
                    {"name": "PORT", "value": str(port)},
                    {"name": "NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                    {
                        "name": "PW",
                        "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}},
                    },
                ],
                "ports": [{"name": "http", "containerPort": port}],
                "readinessProbe": {"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 1},
                "lifecycle": {"preStop": {"exec": {"command": ["touch", "/data/stopping"]}}},
                "volumeMounts": [data, {"name": "creds", "mountPath": "/etc/creds"}],
            }
        ],
    )
    worker = start(run, api, tmp_path, spec)
    wait_for(lambda: api.condition("Ready") == "True", timeout_seconds=60, message="pod Ready")
    volume = worker.volumes.path("data")
    assert (volume / "order").read_text() == "setup sidecar server"
    name, password, path = (volume / "env").read_text().split()
    assert (name, password) == ("p", "s3cret")
    assert Path(path) == worker.volumes.path("creds") / "password"  # the mount path, rewritten
    assert api.status["phase"] == "Running"
    assert api.status["podIP"] == "127.0.0.1"
    assert api.container("setup", init=True)["state"]["terminated"]["exitCode"] == 0
    assert api.container("sidecar", init=True)["started"] is True
    assert api.container("server")["ready"] is True

    worker.delete(gone=False)
    wait_for(lambda: not worker.worker.alive, timeout_seconds=30, message="the pod's end")
    assert (volume / "stopping").exists()  # the preStop hook ran before SIGTERM
    assert [c.body for c in api.kube.calls if c.method == "DELETE"] == [
        {"gracePeriodSeconds": 0, "preconditions": {"uid": "uid-1"}}
    ]
    assert all(not c.running for c in [*worker.init, *worker.containers])


def test_an_exit_is_restarted_with_its_last_state_and_log(
    api: Api, tmp_path: Path, run: list[PodWorker]
) -> None:
    crash = {
        "name": "crash",
        "image": "test/python:1",
        "command": py("import sys; print('no GPUs here', flush=True); sys.exit(3)"),
    }
    worker = start(run, api, tmp_path, pod(containers=[crash]))
    wait_for(
        lambda: bool(api.status) and api.container("crash")["restartCount"] >= 2,
        timeout_seconds=60,
        message="two restarts",
    )
    last = api.container("crash")["lastState"]["terminated"]
    assert last["exitCode"] == 3 and last["reason"] == "Error"
    assert "no GPUs here" in last["message"]
    assert "no GPUs here" in worker.describe()


def test_a_taken_port_keeps_the_container_waiting_with_a_clear_reason(
    api: Api, tmp_path: Path, run: list[PodWorker]
) -> None:
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))  # noqa: S104 - as a pod would bind
        taken.listen()
        port = taken.getsockname()[1]
        server = {
            "name": "server",
            "image": "test/python:1",
            "command": py("import time; time.sleep(600)"),
            "ports": [{"name": "https", "containerPort": port}],
        }
        start(run, api, tmp_path, pod(containers=[server]))
        wait_for(
            lambda: bool(api.status) and "waiting" in api.container("server")["state"],
            timeout_seconds=30,
            message="the container's status",
        )
        wait_for(
            lambda: api.container("server")["state"]["waiting"]["reason"] == "PortInUse",
            timeout_seconds=30,
            message="PortInUse",
        )
        message = api.container("server")["state"]["waiting"]["message"]
        assert f"port {port} (https) is taken on this host" in message


def test_the_account_token_mount_makes_in_cluster_a_kubeconfig(
    api: Api, tmp_path: Path, run: list[PodWorker]
) -> None:
    access = {
        "name": "kube-api-access",
        "projected": {
            "sources": [
                {"serviceAccountToken": {"path": "token", "expirationSeconds": 3607}},
                {
                    "configMap": {
                        "name": "kube-root-ca.crt",
                        "items": [{"key": "ca.crt", "path": "ca.crt"}],
                    }
                },
            ]
        },
    }
    client = {
        "name": "client",
        "image": "test/python:1",
        "command": py(
            "import os, sys; open(os.environ['HOME'] + '/seen', 'w').write("
            "' '.join(sys.argv[1:]) + ' ' + os.environ['KUBECONFIG']); import time; time.sleep(600)"
        ),
        "args": ["--in-cluster"],
        "volumeMounts": [{"name": "kube-api-access", "mountPath": SA_DIR, "readOnly": True}],
    }
    spec = pod(containers=[client])
    spec["spec"]["volumes"].append(access)
    worker = start(run, api, tmp_path, spec)
    seen = worker.dir / "home" / "client" / "seen"
    wait_for(seen.exists, timeout_seconds=30, message="the container's argv")
    flag, kubeconfig = seen.read_text().split()
    assert flag == f"--kubeconfig={kubeconfig}"
    config = yaml.safe_load(Path(kubeconfig).read_text())
    account = worker.volumes.path("kube-api-access")
    assert config["clusters"][0]["cluster"] == {
        "server": "https://127.0.0.1:6443",
        "certificate-authority": str(account / "ca.crt"),
    }
    assert config["users"][0]["user"] == {"tokenFile": str(account / "token")}
    assert (account / "token").read_text() == "token-for-web-p"
    assert (account / "ca.crt").read_text() == "CA"


def test_a_missing_secret_keeps_the_pod_creating_until_it_exists(
    api: Api, tmp_path: Path, run: list[PodWorker]
) -> None:
    idle = {"name": "idle", "image": "test/python:1", "command": py("import time; time.sleep(600)")}
    spec = pod(containers=[idle])
    spec["spec"]["volumes"].append({"name": "tls", "secret": {"secretName": "later"}})
    worker = start(run, api, tmp_path, spec)
    wait_for(lambda: bool(api.status), timeout_seconds=30, message="a status")
    waiting = api.container("idle")["state"]["waiting"]
    assert waiting["reason"] == "ContainerCreating"
    assert "spec.volumes[2].secret: secret ns/later does not exist" in waiting["message"]
    assert "secret ns/later does not exist" in worker.describe()
    assert worker.containers[0].process is None


def test_the_pod_hostname_the_nvidia_runtime_and_a_component_configured_by_file(
    api: Api, tmp_path: Path, run: list[PodWorker]
) -> None:
    unshare = uts_unshare()
    if unshare is None:
        print("this host allows no UTS namespace: processes keep the host's name")
    scheduler_like = Image(
        repository="test/configured", tag="1", bin_dirs=PYTHON.bin_dirs, config_file_access=True
    )
    ctx = replace(
        context(api, tmp_path),
        images=(PYTHON, scheduler_like),
        unshare=unshare,
        nvidia_env={"LD_LIBRARY_PATH": "/fake/nvml"},
    )
    report = (
        "import json, os, socket, sys, time; "
        "open(os.environ['HOME'] + '/seen', 'w').write(json.dumps({"
        "'host': socket.gethostname(), 'lib': os.environ.get('LD_LIBRARY_PATH'), "
        "'config': open(sys.argv[1].removeprefix('--config=')).read()})); time.sleep(600)"
    )
    account = {"name": "kube-api-access", "mountPath": SA_DIR}
    containers = [
        {
            "name": name,
            "image": image,
            "command": ["python3", "-c", report, "--config=/etc/cfg/config.yaml"],
            "env": env,
            "volumeMounts": [account, {"name": "cfg", "mountPath": "/etc/cfg"}],
        }
        for name, image, env in (
            ("gpu", "test/python:1", [{"name": "NVIDIA_VISIBLE_DEVICES", "value": "all"}]),
            ("configured", "test/configured:1", []),
        )
    ]
    spec = pod(containers=containers)
    spec["spec"]["volumes"] += [
        {
            "name": "kube-api-access",
            "projected": {"sources": [{"serviceAccountToken": {"path": "token"}}]},
        },
        {"name": "cfg", "secret": {"secretName": "config"}},
    ]
    worker = PodWorker(spec, ctx)
    run.append(worker)
    worker.worker.start()
    seen = {c: worker.dir / "home" / c / "seen" for c in ("gpu", "configured")}
    try:
        wait_for(lambda: all(p.exists() for p in seen.values()), timeout_seconds=30, message="both")
    finally:
        print(worker.describe())
    gpu, configured = (json.loads(p.read_text()) for p in seen.values())
    if unshare is not None:
        assert gpu["host"] == configured["host"] == "p"
    assert gpu["lib"] == "/fake/nvml"
    assert configured["lib"] is None
    # A plain image's --config path is only rewritten; one configured by file gets a copy that
    # names the kubeconfig.
    assert gpu["config"] == "kind: KubeSchedulerConfiguration\n"
    kubeconfig = worker.dir / "kubeconfigs" / "configured.yaml"
    assert yaml.safe_load(configured["config"]) == {
        "kind": "KubeSchedulerConfiguration",
        "clientConnection": {"kubeconfig": str(kubeconfig)},
    }


def test_an_image_not_on_this_host_waits_with_the_kubelets_reason(
    api: Api, tmp_path: Path, run: list[PodWorker]
) -> None:
    other = {"name": "web", "image": "nginx:1.27", "command": ["nginx"]}
    start(run, api, tmp_path, pod(containers=[other]))
    wait_for(
        lambda: bool(api.status) and "waiting" in api.container("web")["state"],
        timeout_seconds=30,
        message="a status",
    )
    wait_for(
        lambda: api.container("web")["state"]["waiting"]["reason"] == "ErrImageNeverPull",
        timeout_seconds=30,
        message="ErrImageNeverPull",
    )
    message = api.container("web")["state"]["waiting"]["message"]
    assert message.startswith("spec.containers[0].image: image nginx:1.27: podrunner runs only")


def test_a_failing_liveness_probe_kills_and_restarts_the_container(
    api: Api, tmp_path: Path, run: list[PodWorker]
) -> None:
    stuck = {
        "name": "stuck",
        "image": "test/python:1",
        "command": py("import time; time.sleep(600)"),
        "livenessProbe": {
            "exec": {"command": ["false"]},
            "periodSeconds": 1,
            "failureThreshold": 2,
        },
    }
    start(run, api, tmp_path, pod(containers=[stuck]))
    wait_for(
        lambda: bool(api.status) and api.container("stuck")["restartCount"] >= 1,
        timeout_seconds=60,
        message="a restart",
    )
    last = api.container("stuck")["lastState"]["terminated"]
    assert last["exitCode"] == 128 + 15  # SIGTERM, as a runtime reports it
    assert "liveness probe failed: exit 1" in last["message"]
