"""The shipped RBAC of the headroom scheduler pod: each identity can do what it needs, no more."""

from __future__ import annotations

from pathlib import Path

import pytest

from tooling.localcluster import LocalCluster

ROOT = Path(__file__).resolve().parents[2]
EXTENDER = "system:serviceaccount:headroom-system:headroom-extender"
SCHEDULER = "system:serviceaccount:headroom-system:headroom-scheduler"


@pytest.fixture(scope="module")
def rbac(cluster: LocalCluster) -> LocalCluster:
    cluster.kubectl("apply", "-f", str(ROOT / "manifests" / "namespace.yaml"))
    cluster.kubectl("apply", "-f", str(ROOT / "manifests" / "extender" / "rbac.yaml"))
    return cluster


def can(cluster: LocalCluster, who: str, *args: str) -> bool:
    result = cluster.kubectl("auth", "can-i", *args, f"--as={who}", check=False)
    return result.stdout.strip() == "yes"


@pytest.mark.parametrize(
    "args",
    [
        ("watch", "pods", "-A"),
        ("patch", "pods", "-n", "ml"),
        ("create", "pods", "--subresource=binding", "-n", "ml"),
        ("patch", "pods", "--subresource=status", "-n", "ml"),
        ("list", "nodes"),
        ("watch", "gpunodes.headroom.dev"),
        ("get", "leases.coordination.k8s.io/headroom-scheduler", "-n", "headroom-system"),
        ("watch", "aiscalers.headroom.dev", "-A"),
        ("patch", "aiscalers.headroom.dev", "--subresource=status", "-n", "ml"),
        ("get", "deployments.apps", "-n", "ml"),
        ("patch", "deployments.apps", "--subresource=scale", "-n", "ml"),
        ("patch", "statefulsets.apps", "--subresource=scale", "-n", "ml"),
        ("list", "horizontalpodautoscalers.autoscaling", "-n", "ml"),
        ("create", "events", "-n", "ml"),
    ],
)
def test_the_extender_may_do_what_it_needs(rbac: LocalCluster, args: tuple[str, ...]) -> None:
    assert can(rbac, EXTENDER, *args)


@pytest.mark.parametrize(
    "args",
    [
        ("delete", "pods", "-n", "ml"),
        ("create", "pods", "-n", "ml"),
        ("get", "secrets", "-A"),
        ("patch", "nodes"),
        ("update", "gpunodes.headroom.dev"),
        ("update", "leases.coordination.k8s.io/headroom-scheduler", "-n", "headroom-system"),
        ("get", "leases.coordination.k8s.io/other", "-n", "headroom-system"),
        ("update", "aiscalers.headroom.dev", "-n", "ml"),
        ("patch", "aiscalers.headroom.dev", "-n", "ml"),  # the spec is the user's
        ("patch", "deployments.apps", "-n", "ml"),  # only the replica count, through /scale
        ("create", "horizontalpodautoscalers.autoscaling", "-n", "ml"),
    ],
)
def test_the_extender_may_do_nothing_else(rbac: LocalCluster, args: tuple[str, ...]) -> None:
    assert not can(rbac, EXTENDER, *args)


def test_the_scheduler_holds_its_own_lease_and_binds(rbac: LocalCluster) -> None:
    assert can(
        rbac,
        SCHEDULER,
        "update",
        "leases.coordination.k8s.io/headroom-scheduler",
        "-n",
        "headroom-system",
    )
    assert can(rbac, SCHEDULER, "create", "pods", "--subresource=binding", "-n", "ml")
    assert not can(
        rbac, SCHEDULER, "update", "leases.coordination.k8s.io/other", "-n", "headroom-system"
    )
