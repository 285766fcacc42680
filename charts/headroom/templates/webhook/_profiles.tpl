{{/* The chart's webhook profiles, with the platform's GPU node labels (see values.yaml). With
the generic platform every profile but `default` leaves the node fields out and takes the
webhook's built-in defaults, which are GPU feature discovery's labels; with any other labels every
profile names them. */}}
{{- define "headroom.webhook.profiles" -}}
{{- $gpu := include "headroom.platform" . | fromYaml -}}
{{- $builtin := and (eq $gpu.key "nvidia.com/gpu.present") (eq $gpu.value "true") $gpu.memoryLabel -}}
# Headroom webhook profiles. The webhook mounts this file from the ConfigMap
# headroom-webhook-profiles, re-reads it within seconds of a change and keeps the last good
# version if a new one is invalid. A pod picks a profile with the annotation
# `headroom.dev/profile: NAME` (default: `default`). Fields a profile leaves out take the values
# shown in `default`.
{{- if not $builtin }}
# Every profile names requiredNodeAffinity and gpuMemoryAffinity for this cluster's GPU node
# labels: the webhook's own defaults for them are GPU feature discovery's.
{{- end }}
apiVersion: headroom.dev/v1alpha1
kind: WebhookProfiles
profiles:
  default:
    tolerations:
      - {key: nvidia.com/gpu, operator: Exists, effect: NoSchedule}
    requiredNodeAffinity:
      - {{ include "headroom.gpuNodeRequirement" . }}
    gpuMemoryAffinity: {{ $gpu.memoryLabel }}{{ if $gpu.memoryLabel }}      # nvidia.com/gpu.memory Gt <MiB-1> from headroom.dev/gpu-memory{{ else }}     # the nodes carry no nvidia.com/gpu.memory label{{ end }}
    preferredNodeAffinity: []
    readinessGate: true          # headroom.dev/gpu-ready
    schedulerName: headroom
    maxGpus: 8
    sharing:
      allowed: true
      env: NVIDIA_VISIBLE_DEVICES
  # Large models: whole 80 GB-class GPUs, preferring nodes with NVLink.
  gpu-large:
    requiredNodeAffinity:
      - {{ include "headroom.gpuNodeRequirement" . }}
    {{- if not $builtin }}
    gpuMemoryAffinity: {{ $gpu.memoryLabel }}
    {{- end }}
    preferredNodeAffinity:
      - weight: 50
        preference:
          matchExpressions:
            - {key: {{ $gpu.largeKey }}, operator: In, values: [{{ join ", " $gpu.largeValues }}]}
    maxGpus: 8
    sharing: {allowed: false}
  # Small models that share GPUs with others.
  shared-small:
    {{- if not $builtin }}
    requiredNodeAffinity:
      - {{ include "headroom.gpuNodeRequirement" . }}
    gpuMemoryAffinity: {{ $gpu.memoryLabel }}
    {{- end }}
    maxGpus: 1
    sharing: {allowed: true}
{{- end }}
