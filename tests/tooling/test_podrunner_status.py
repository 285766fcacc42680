"""The pod status the podrunner writes: phase, IPs, the conditions (sidecars, readiness gates,
stable transition times) and the container statuses, with restarts' last states."""

from __future__ import annotations

from typing import Any

from tooling.podrunner_status import ContainerView, pod_status

T0, T1 = "2026-01-01T00:00:00Z", "2026-01-01T00:01:00Z"


def pod(*, init: list[dict[str, Any]] | None = None, **status: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "p", "namespace": "ns"},
        "spec": {
            "initContainers": init or [],
            "containers": [{"name": "main"}],
            "readinessGates": [{"conditionType": "example.com/gate"}],
        },
        "status": status,
    }


def conditions(status: dict[str, Any]) -> dict[str, str]:
    return {c["type"]: c["status"] for c in status["conditions"]}


def running(name: str, *, ready: bool) -> ContainerView:
    return ContainerView(
        name, "i", state="running", started_at=T0, started=True, ready=ready, container_id="c://1"
    )


def test_a_pod_whose_volumes_wait_is_pending_without_an_ip() -> None:
    status = pod_status(
        pod(),
        host_ip="192.0.2.2",
        sandbox_ready=False,
        init=[],
        containers=[ContainerView("main", "i")],
        now=T0,
    )
    assert status["phase"] == "Pending"
    assert "podIP" not in status and status["hostIP"] == "192.0.2.2"
    assert conditions(status)["PodReadyToStartContainers"] == "False"
    assert status["containerStatuses"][0]["state"] == {"waiting": {"reason": "ContainerCreating"}}


def test_ready_needs_the_containers_the_started_sidecar_and_the_readiness_gates() -> None:
    init = [{"name": "setup"}, {"name": "certs", "restartPolicy": "Always"}]
    setup = ContainerView("setup", "i")
    setup.terminate(exit_code=0, finished_at=T0, message="")
    certs = running("certs", ready=True)
    main = running("main", ready=True)
    gate_false = pod(init=init, conditions=[{"type": "example.com/gate", "status": "False"}])
    status = pod_status(
        gate_false,
        host_ip="192.0.2.2",
        sandbox_ready=True,
        init=[setup, certs],
        containers=[main],
        now=T0,
    )
    assert status["phase"] == "Running"
    assert status["podIP"] == "192.0.2.2" and status["podIPs"] == [{"ip": "192.0.2.2"}]
    assert conditions(status) == {
        "PodReadyToStartContainers": "True",
        "Initialized": "True",
        "ContainersReady": "True",
        "Ready": "False",  # the gate is not True
    }
    gate_true = pod(init=init, conditions=[{"type": "example.com/gate", "status": "True"}])
    status = pod_status(
        gate_true,
        host_ip="192.0.2.2",
        sandbox_ready=True,
        init=[setup, certs],
        containers=[main],
        now=T0,
    )
    assert conditions(status)["Ready"] == "True"
    assert [s["name"] for s in status["initContainerStatuses"]] == ["setup", "certs"]
    certs.started = False  # a sidecar not started yet holds the pod uninitialized
    status = pod_status(
        gate_true,
        host_ip="192.0.2.2",
        sandbox_ready=True,
        init=[setup, certs],
        containers=[main],
        now=T0,
    )
    assert conditions(status)["Initialized"] == "False" and status["phase"] == "Pending"


def test_a_pod_stays_running_while_an_exited_container_waits_for_its_restart() -> None:
    main = running("main", ready=True)
    main.terminate(exit_code=1, finished_at=T1, message="")
    status = pod_status(pod(), host_ip="h", sandbox_ready=True, init=[], containers=[main], now=T1)
    assert status["phase"] == "Running"
    assert conditions(status)["ContainersReady"] == "False"


def test_a_condition_keeps_its_transition_time_until_it_changes() -> None:
    before = pod(
        conditions=[{"type": "ContainersReady", "status": "True", "lastTransitionTime": T0}]
    )
    main = running("main", ready=True)
    status = pod_status(before, host_ip="h", sandbox_ready=True, init=[], containers=[main], now=T1)
    times = {c["type"]: c["lastTransitionTime"] for c in status["conditions"]}
    assert times["ContainersReady"] == T0
    assert times["Initialized"] == T1
    main.ready = False
    status = pod_status(before, host_ip="h", sandbox_ready=True, init=[], containers=[main], now=T1)
    times = {c["type"]: c["lastTransitionTime"] for c in status["conditions"]}
    assert times["ContainersReady"] == T1


def test_an_exit_is_terminated_then_the_last_state_of_the_restart() -> None:
    main = running("main", ready=True)
    main.container_id = "podrunner://10"
    main.terminate(exit_code=3, finished_at=T1, message="boom")
    status = main.status()
    assert status["state"]["terminated"] == {
        "exitCode": 3,
        "reason": "Error",
        "startedAt": T0,
        "finishedAt": T1,
        "message": "boom",
        "containerID": "podrunner://10",
    }
    assert not status["ready"]
    main.state, main.restart_count = "running", 1
    status = main.status()
    assert status["state"] == {"running": {"startedAt": T0}}
    assert status["lastState"]["terminated"]["exitCode"] == 3
    assert status["restartCount"] == 1
