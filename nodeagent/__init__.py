"""The node agent: NVML reading, pod attribution, the GPUNode publisher and /metrics."""
