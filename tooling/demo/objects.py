"""The objects the demo's story deploys: unrelated GPU Jobs (`workloads`), the model Deployment
(labelled `headroom.dev/managed: "true"`, so the webhook mutates its pods; its GPU memory in
`headroom.dev/gpu-memory`), and the seed AIScaler of manifests/examples/seed-aiscaler.yaml with the
scenario's target, bounds and extra spec fields.

A workload with a `claim` gets its GPUs through DRA: a ResourceClaimTemplate in the namespace, and
pods that name it (`tooling.demo.dra`) with no `nvidia.com/gpu` limit. The model and the other
workloads use the device plugin; the model's template selects the device-plugin nodes by GPU
feature discovery's `nvidia.com/gpu.present` label (which DRA nodes do not carry), so the
AIScaler's feasibility counts only the GPUs its replicas can get.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from headroom import names
from kubeapi.client import Kube
from tooling.demo import dra
from tooling.demo.model import GpuAsk, Scenario, Workload
from tooling.demo.nodes import PRODUCT_LABEL, product_label

SEED = Path(__file__).resolve().parents[2] / "manifests" / "examples" / "seed-aiscaler.yaml"
APP_LABEL = "app.kubernetes.io/name"


def _pod_template(
    app: str, ask: GpuAsk, *, image: str, serving: bool, device_plugin: bool = True
) -> dict[str, Any]:
    annotations = {names.GPU_MEMORY_ANNOTATION: ask.memory} if ask.memory else {}
    container: dict[str, Any] = {"name": "main", "image": image}
    if ask.sharing:  # shared GPUs are not device-plugin resources: no nvidia.com/gpu limit
        annotations[names.GPU_SHARING_ANNOTATION] = "true"
    elif device_plugin:
        container["resources"] = {"limits": {names.GPU_RESOURCE: str(ask.gpus)}}
    if serving:
        container["ports"] = [{"name": "http", "containerPort": 8000}]
    return {
        "metadata": {
            "labels": {APP_LABEL: app, names.MANAGED_LABEL: names.MANAGED_VALUE},
            "annotations": annotations,
        },
        "spec": {"containers": [container], "terminationGracePeriodSeconds": 30},
    }


def deployment(scenario: Scenario) -> dict[str, Any]:
    model = scenario.model
    template = _pod_template(model.name, model.ask, serving=True, image="vllm/vllm-openai:v0.6.3")
    template["spec"]["nodeSelector"] = {names.GPU_PRESENT_NODE_LABEL: "true"}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": model.name, "labels": {APP_LABEL: model.name}},
        "spec": {
            "replicas": model.replicas,
            "selector": {"matchLabels": {APP_LABEL: model.name}},
            "template": template,
        },
    }


def aiscaler(scenario: Scenario) -> dict[str, Any]:
    """The seed AIScaler, as shipped, pointed at the model with the scenario's numbers."""
    seed: dict[str, Any] = yaml.safe_load(SEED.read_text())
    seed["metadata"] = {"name": scenario.scaler.name}
    seed["spec"].update(
        deploymentName=scenario.model.name,
        targetValue=scenario.scaler.target_value,
        minReplicas=scenario.scaler.min_replicas,
        maxReplicas=scenario.scaler.max_replicas,
        **scenario.scaler.spec,
    )
    return seed


def job(workload: Workload) -> dict[str, Any]:
    claim = workload.claim is not None
    template = _pod_template(
        workload.name,
        workload.ask,
        serving=False,
        image="example.invalid/batch:1",
        device_plugin=not claim,
    )
    spec = template["spec"]
    spec["restartPolicy"] = "Never"
    if claim:  # GPUs from a claim, not the device plugin
        dra.claim_pod_spec(workload, spec)
    if workload.product is not None:  # as GPU feature discovery labels the node
        spec["nodeSelector"] = {PRODUCT_LABEL: product_label(workload.product)}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": workload.name},
        "spec": {
            "parallelism": workload.parallelism,
            "completions": workload.parallelism,
            "backoffLimit": 0,
            "template": template,
        },
    }


def deploy(kube: Kube, scenario: Scenario, *, workloads: bool, model: bool) -> None:
    ns = scenario.namespace
    later = scenario.started_later()
    if workloads:
        for w in scenario.workloads:
            if w.name not in later:
                start_workload(kube, scenario, w.name)
    if model:
        kube.request(
            "POST", f"/apis/apps/v1/namespaces/{ns}/deployments", body=deployment(scenario)
        )
        kube.request(
            "POST",
            f"/apis/{names.GROUP_VERSION}/namespaces/{ns}/{names.AISCALER_PLURAL}",
            body=aiscaler(scenario),
        )


def start_workload(kube: Kube, scenario: Scenario, name: str) -> None:
    w = next(w for w in scenario.workloads if w.name == name)
    if w.claim is not None:
        dra.create_template(kube, scenario.namespace, w)
    kube.request("POST", f"/apis/batch/v1/namespaces/{scenario.namespace}/jobs", body=job(w))
