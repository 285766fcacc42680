"""The AIScaler controller's rounds: metric reads run concurrently, and an AIScaler whose source is
slow finishes in a later tick while the others' rounds end at once."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from extender.scaler.controller import ScalerController
from extender.verbs import Settings
from extender.view import ClusterView
from tests.extender.scaler.rounds import Prometheus, aiscaler, cluster, running, scaled
from tests.waiting import wait_for

DEPLOYMENTS = "/apis/apps/v1/namespaces/ml/deployments"


@pytest.fixture
def servers() -> Iterator[tuple[Prometheus, Prometheus]]:
    fast, slow = Prometheus(40), Prometheus(40)
    try:
        yield fast, slow
    finally:
        fast.close()
        slow.close()


def test_a_slow_prometheus_delays_only_the_aiscalers_that_ask_it(
    servers: tuple[Prometheus, Prometheus],
) -> None:
    fast, slow = servers
    slow.hold.clear()
    scalers = [aiscaler("quick", fast.url), aiscaler("stuck", slow.url)]
    kube = cluster("quick", "stuck")
    controller = ScalerController(
        kube=kube,
        view=ClusterView(),
        scalers=lambda: scalers,
        pods=lambda: [running("quick"), running("stuck")],
        is_leader=lambda: True,
        settings=Settings(),
        round_wait_seconds=0.2,
    )
    try:
        started = time.monotonic()
        assert controller.reconcile_due() == 1  # quick's round ended; stuck's is still reading
        assert time.monotonic() - started < 2.0
        assert scaled(kube, "quick") == [4] and scaled(kube, "stuck") == []
        # The next tick does not start stuck again, nor wait for it beyond its own budget.
        assert controller.reconcile_due() == 0
        slow.hold.set()
        wait_for(
            lambda: controller.reconcile_due() == 1 or scaled(kube, "stuck") == [4],
            timeout_seconds=10,
            message="stuck's round ending once its Prometheus answers",
        )
        assert scaled(kube, "stuck") == [4]
    finally:
        controller.stop()
