"""The harness and the demo run the shipped configuration: only addresses, kubeconfig paths and
the caBundle are filled in, and `differences` finds any other change."""

from pathlib import Path

from tooling import shipped


def test_the_scheduler_profile_is_filled_in_and_otherwise_as_shipped() -> None:
    used = shipped.scheduler_config(
        extender_url="http://127.0.0.1:9999", kubeconfig=Path("/tmp/k.kubeconfig")
    )
    assert used["extenders"][0]["urlPrefix"] == "http://127.0.0.1:9999"
    assert used["clientConnection"]["kubeconfig"] == "/tmp/k.kubeconfig"
    assert (
        shipped.differences(
            shipped.load(shipped.SCHEDULER_CONFIG), used, allowed=shipped.FILLED_IN["scheduler"]
        )
        == []
    )


def test_the_webhook_configuration_calls_urls_with_the_ca_bundle_and_is_otherwise_as_shipped() -> (
    None
):
    used = shipped.webhook_configuration(base_url="https://127.0.0.1:8443", ca_bundle="Q0E=")
    assert [h["clientConfig"] for h in used["webhooks"]] == [
        {"url": "https://127.0.0.1:8443/mutate", "caBundle": "Q0E="},
        {"url": "https://127.0.0.1:8443/mutate/namespace", "caBundle": "Q0E="},
    ]
    assert (
        shipped.differences(
            shipped.load(shipped.WEBHOOK_CONFIG), used, allowed=shipped.FILLED_IN["webhook"]
        )
        == []
    )


def test_any_other_change_is_reported_with_its_path() -> None:
    used = shipped.scheduler_config(extender_url="http://x", kubeconfig=Path("k"))
    used["apiVersion"] = "kubescheduler.config.k8s.io/v1beta1"
    used["leaderElection"]["resourceName"] = "per-test"
    used["extenders"][0]["weight"] = 1
    del used["extenders"][0]["bindVerb"]
    assert shipped.differences(
        shipped.load(shipped.SCHEDULER_CONFIG), used, allowed=shipped.FILLED_IN["scheduler"]
    ) == [
        "apiVersion: shipped 'kubescheduler.config.k8s.io/v1', "
        "used 'kubescheduler.config.k8s.io/v1beta1'",
        "extenders[0].bindVerb: shipped 'bind', used None",
        "extenders[0].weight: shipped 5, used 1",
        "leaderElection.resourceName: shipped 'headroom-scheduler', used 'per-test'",
    ]
    hook = shipped.webhook_configuration(base_url="https://h", ca_bundle="x")
    hook["webhooks"][0]["namespaceSelector"] = {"matchLabels": {"mine": "1"}}
    assert shipped.differences(
        shipped.load(shipped.WEBHOOK_CONFIG), hook, allowed=shipped.FILLED_IN["webhook"]
    ) == [
        "webhooks[0].namespaceSelector.matchExpressions: shipped [{'key': "
        "'kubernetes.io/metadata.name', 'operator': 'NotIn', 'values': ['kube-system', "
        "'headroom-system']}], used None",
        "webhooks[0].namespaceSelector.matchLabels.mine: shipped None, used '1'",
    ]
