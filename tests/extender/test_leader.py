"""Leadership: the extender acts exactly while the scheduler beside it holds a live Lease."""

from __future__ import annotations

from typing import Any

import pytest

from extender.leader import Leadership
from headroom.clock import format_time
from kubeapi.client import Unreachable
from tests.kubeapi.fake import Call, FakeKube

NOW = 1_700_000_000.0


LEASE_PATH = "/apis/coordination.k8s.io/v1/namespaces/headroom-system/leases/headroom-scheduler"


class LeaseServer:
    """Answers GETs of one Lease as the API server would; `spec=None` means it fails."""

    def __init__(self) -> None:
        self.spec: dict[str, Any] | None = None
        self.kube = FakeKube().on("GET", LEASE_PATH, self._answer)

    @property
    def paths(self) -> list[str]:
        return self.kube.requests()

    def _answer(self, call: Call) -> dict[str, Any]:
        if self.spec is None:
            raise Unreachable("cannot reach the API server")
        return {"spec": self.spec}


def leadership(server: LeaseServer) -> Leadership:
    return Leadership(
        server.kube,
        lease=("headroom-system", "headroom-scheduler"),
        identity="sched-abc",
        clock=lambda: NOW,
    )


def lease(holder: str, *, renewed_seconds_ago: float, duration_seconds: int = 15) -> dict[str, Any]:
    return {
        "holderIdentity": holder,
        "leaseDurationSeconds": duration_seconds,
        "renewTime": format_time(NOW - renewed_seconds_ago),
    }


@pytest.mark.parametrize(
    ("spec", "leading"),
    [
        (lease("sched-abc_2f4c9e", renewed_seconds_ago=3), True),  # how kube-scheduler writes it
        (lease("sched-abc", renewed_seconds_ago=3), True),
        (lease("sched-abcd_2f4c9e", renewed_seconds_ago=3), False),  # a longer pod name
        (lease("sched-xyz_1", renewed_seconds_ago=3), False),
        (lease("sched-abc_2f4c9e", renewed_seconds_ago=30), False),  # expired: its holder died
        ({"holderIdentity": "sched-abc_1", "renewTime": "soon"}, False),
        ({}, False),
        (None, False),  # the API server cannot be reached: stand by
    ],
)
def test_leads_only_while_its_scheduler_holds_a_live_lease(
    spec: dict[str, Any] | None, leading: bool
) -> None:
    server = LeaseServer()
    server.spec = spec
    assert leadership(server).check_once() is leading
    assert server.paths == [
        "GET /apis/coordination.k8s.io/v1/namespaces/headroom-system/leases/headroom-scheduler"
    ]


def test_changes_are_announced_and_no_lease_means_always_leading() -> None:
    server = LeaseServer()
    server.spec = lease("sched-abc_1", renewed_seconds_ago=1)
    seen: list[bool] = []
    lead = leadership(server)
    lead.on_change.append(seen.append)
    lead.check_once()
    server.spec = lease("other_1", renewed_seconds_ago=1)
    lead.check_once()
    lead.check_once()
    assert seen == [True, False]
    alone = Leadership(None, lease=None, identity="x")
    alone.start()
    assert alone.is_leader()
