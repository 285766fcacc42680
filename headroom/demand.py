"""What a pod asks of the GPUs: how many, how much memory on each, shared or exclusive.

Works on pods as JSON objects (the form AdmissionReview, the watch cache and the API return), so
the webhook, the extender and the scaler read a pod's demand the same way. Pure: no client imports.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from headroom import names
from headroom.fields import FieldError, read_optional_mapping
from headroom.podclaims import NO_GPUS, PodGpus
from headroom.quantity import QuantityError, format_bytes, parse_bytes

JsonObject = Mapping[str, Any]


class DemandError(FieldError):
    """A pod whose GPU request cannot be understood; `field` names the annotation or field."""


@dataclass(frozen=True)
class GpuDemand:
    """A pod's GPU demand. `memory_bytes` is per GPU; 0 means the pod declared no need.

    `dra`: some of its GPUs come from ResourceClaims, so the DRA allocator, not Headroom, picks
    the device; `all_gpus`: a claim asks for every GPU of the node (`allocationMode: All`)."""

    gpu_count: int
    memory_bytes: int = 0
    shared: bool = False
    dra: bool = False
    all_gpus: bool = False

    @property
    def total_bytes(self) -> int:
        return self.gpu_count * self.memory_bytes

    def describe(self) -> str:
        """Words for reasons and events: "20Gi on 1 GPU", "a whole GPU x2"."""
        plural = "GPU" if self.gpu_count == 1 else "GPUs"
        if self.all_gpus:
            each = f"{format_bytes(self.memory_bytes)} on " if self.memory_bytes else ""
            return f"{each}every GPU of the node"
        if self.memory_bytes == 0:
            return f"{self.gpu_count} free {plural}"
        return f"{format_bytes(self.memory_bytes)} on {self.gpu_count} {plural}"

    @classmethod
    def from_pod(cls, pod: JsonObject, *, claims: PodGpus = NO_GPUS) -> GpuDemand | None:
        """The pod's demand, or None for a pod that asks for no GPU at all. `claims` is what its
        ResourceClaims ask of GPU device classes (`headroom.podclaims.pod_gpus`).

        Raises DemandError naming the annotation or resource field that is malformed.
        """
        annotations = _annotations(pod)
        memory_text = annotations.get(names.GPU_MEMORY_ANNOTATION)
        shared = _parse_bool(annotations, names.GPU_SHARING_ANNOTATION)
        gpu_limit = _gpu_limit(_object(pod.get("spec"), "spec"))
        if claims.ask.any:
            return _with_claims(claims, gpu_limit=gpu_limit, memory_text=memory_text, shared=shared)
        if memory_text is None:
            if shared:
                raise DemandError(
                    names.GPU_MEMORY_ANNOTATION,
                    f'is required with {names.GPU_SHARING_ANNOTATION}: "true" (a quantity such '
                    'as "20Gi": the memory the pod needs on each GPU)',
                )
            return None if gpu_limit == 0 else cls(gpu_count=gpu_limit)
        memory_bytes = _parse_memory(memory_text)
        return cls(gpu_count=gpu_limit or 1, memory_bytes=memory_bytes, shared=shared)


def _with_claims(
    claims: PodGpus, *, gpu_limit: int, memory_text: str | None, shared: bool
) -> GpuDemand:
    """A pod with GPUs from ResourceClaims. Sharing then comes from the claim (a `memory`
    capacity request on a device that allows several allocations), never from the annotation,
    whose `NVIDIA_VISIBLE_DEVICES` would fight the DRA driver's own device injection."""
    if shared:
        raise DemandError(
            names.GPU_SHARING_ANNOTATION,
            "is for device-plugin pods; a pod whose GPUs come from ResourceClaims shares a GPU "
            "by requesting memory capacity in its claim (capacity.requests.memory)",
        )
    # The larger of the two: a share the claim was given, or the need the pod declares.
    declared = _parse_memory(memory_text) if memory_text is not None else 0
    memory_bytes = max(declared, claims.ask.memory_bytes)
    return GpuDemand(
        gpu_count=gpu_limit + claims.ask.count,
        memory_bytes=memory_bytes,
        shared=claims.ask.shared,
        dra=True,
        all_gpus=claims.ask.all_devices,
    )


def device_plugin_gpus(pod: JsonObject) -> int:
    """The pod's `nvidia.com/gpu` count (0 when its GPUs come only from claims or annotations);
    a malformed one raises DemandError naming the field."""
    return _gpu_limit(_object(pod.get("spec"), "spec"))


def is_managed(pod: JsonObject) -> bool:
    """True for pods labelled `headroom.dev/managed: "true"`."""
    metadata = pod.get("metadata")
    labels = metadata.get("labels") if isinstance(metadata, Mapping) else None
    return isinstance(labels, Mapping) and labels.get(names.MANAGED_LABEL) == names.MANAGED_VALUE


def assigned_gpus(pod: JsonObject) -> tuple[str, ...]:
    """GPU UUIDs the extender recorded at bind (`headroom.dev/assigned-gpus`), in order."""
    try:
        text = _annotations(pod).get(names.ASSIGNED_GPUS_ANNOTATION) or ""
    except DemandError:
        return ()
    return tuple(part.strip() for part in str(text).split(",") if part.strip())


def _object(value: object, field: str) -> JsonObject:
    """`value` as a JSON object; absent is empty, anything else is an error naming `field`."""
    return read_optional_mapping(value, field, error=DemandError)


def _annotations(pod: JsonObject) -> Mapping[str, str]:
    metadata = _object(pod.get("metadata"), "metadata")
    return _object(metadata.get("annotations"), "metadata.annotations")


def _parse_bool(annotations: Mapping[str, str], key: str) -> bool:
    value = annotations.get(key)
    if value is None:
        return False
    if value in ("true", "false"):
        return value == "true"
    raise DemandError(key, f'must be "true" or "false" (got {value!r})')


def _parse_memory(text: object) -> int:
    try:
        memory_bytes = parse_bytes(text, field=names.GPU_MEMORY_ANNOTATION)
    except QuantityError as exc:
        raise DemandError(names.GPU_MEMORY_ANNOTATION, exc.message) from exc
    if memory_bytes == 0:
        raise DemandError(
            names.GPU_MEMORY_ANNOTATION,
            'must be more than 0 (a quantity such as "20Gi": the memory needed on each GPU)',
        )
    return memory_bytes


def _gpu_limit(spec: JsonObject) -> int:
    """The pod's effective `nvidia.com/gpu` count, by the scheduler's rule. Init containers run one
    at a time, but a native sidecar (an init container with `restartPolicy: Always`) keeps running:
    it adds to every init container started after it and to the app containers. So the count is
    the larger of (app containers + all sidecars) and, for each ordinary init container, its own
    count plus the sidecars started before it (a sidecar alone counts with those before it)."""
    app_total = sum(
        _container_gpus(c, f"spec.containers[{i}]")
        for i, c in enumerate(_list(spec.get("containers")))
    )
    sidecars_total = init_peak = 0
    for i, container in enumerate(_list(spec.get("initContainers"))):
        gpus = _container_gpus(container, f"spec.initContainers[{i}]")
        if container.get("restartPolicy") == "Always":
            sidecars_total += gpus
            init_peak = max(init_peak, sidecars_total)
        else:
            init_peak = max(init_peak, sidecars_total + gpus)
    return max(app_total + sidecars_total, init_peak)


def _list(value: object) -> Iterable[JsonObject]:
    return [v for v in value if isinstance(v, Mapping)] if isinstance(value, list) else []


def _container_gpus(container: JsonObject, where: str) -> int:
    resources = _object(container.get("resources"), f"{where}.resources")
    for kind in ("limits", "requests"):  # extended resources: a request must equal its limit
        amounts = _object(resources.get(kind), f"{where}.resources.{kind}")
        value = amounts.get(names.GPU_RESOURCE)
        if value is None:
            continue
        field = f"{where}.resources.{kind}[{names.GPU_RESOURCE}]"
        try:
            count = parse_bytes(value, field=field)  # same grammar: a whole, non-negative number
        except QuantityError as exc:
            raise DemandError(field, f"must be a whole number of GPUs (got {value!r})") from exc
        return count
    return 0
