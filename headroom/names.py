"""The names every Headroom component agrees on: API group, CRDs, annotations, labels, conditions.

Changing a value here changes the wire contract with users' manifests; DESIGN.md is the reference.
"""

from typing import Final

API_GROUP: Final = "headroom.dev"
API_VERSION: Final = "v1alpha1"
GROUP_VERSION: Final = f"{API_GROUP}/{API_VERSION}"

# Custom resources (plural names are what URLs and RBAC rules use).
GPUNODE_KIND: Final = "GPUNode"
GPUNODE_PLURAL: Final = "gpunodes"
GPUNODE_CRD: Final = f"{GPUNODE_PLURAL}.{API_GROUP}"
AISCALER_KIND: Final = "AIScaler"
AISCALER_PLURAL: Final = "aiscalers"
AISCALER_CRD: Final = f"{AISCALER_PLURAL}.{API_GROUP}"

# Pod opt-in: the webhook's objectSelector matches this label (or the same label on a namespace).
MANAGED_LABEL: Final = f"{API_GROUP}/managed"
MANAGED_VALUE: Final = "true"

# Pod annotations written by users.
GPU_MEMORY_ANNOTATION: Final = f"{API_GROUP}/gpu-memory"
PROFILE_ANNOTATION: Final = f"{API_GROUP}/profile"
GPU_SHARING_ANNOTATION: Final = f"{API_GROUP}/gpu-sharing"
PLACEMENT_POLICY_ANNOTATION: Final = f"{API_GROUP}/placement-policy"  # binpack or spread
# Pod annotations written by Headroom.
ASSIGNED_GPUS_ANNOTATION: Final = f"{API_GROUP}/assigned-gpus"
# Written by the webhook: which version and profile mutated the pod.
MUTATED_BY_ANNOTATION: Final = f"{API_GROUP}/mutated-by"
# Touched by the extender to make the scheduler retry a pod it rejected once headroom appears.
RETRY_ANNOTATION: Final = f"{API_GROUP}/retry-after-headroom"

DEFAULT_PROFILE: Final = "default"

# Readiness gate / pod condition type set by the gpu-ready controller.
GPU_READY_CONDITION: Final = f"{API_GROUP}/gpu-ready"

# What stock Kubernetes and the NVIDIA device plugin / GPU feature discovery call things.
GPU_RESOURCE: Final = "nvidia.com/gpu"
GPU_PRESENT_NODE_LABEL: Final = "nvidia.com/gpu.present"
# MiB of one GPU, set by GPU feature discovery.
GPU_MEMORY_NODE_LABEL: Final = "nvidia.com/gpu.memory"
GPU_TAINT_KEY: Final = "nvidia.com/gpu"

SCHEDULER_NAME: Final = "headroom"
DEFAULT_SCHEDULER_NAME: Final = "default-scheduler"
SYSTEM_NAMESPACE: Final = "headroom-system"

# A node's report is stale after this many heartbeats without one (DESIGN.md: 3 x the heartbeat).
DEFAULT_HEARTBEAT_SECONDS: Final = 30.0
STALE_AFTER_HEARTBEATS: Final = 3
DEFAULT_STALENESS_SECONDS: Final = DEFAULT_HEARTBEAT_SECONDS * STALE_AFTER_HEARTBEATS
