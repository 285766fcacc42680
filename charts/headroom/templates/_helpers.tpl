{{/*
Shared pieces of Headroom's templates: labels, images, and what the platform preset decides.
Object names are fixed (headroom-webhook, headroom-scheduler, ...): the components, the CRDs and
the docs name them, so one release per cluster.
*/}}

{{/* The labels every object carries. Call with (dict "ctx" $ "name" NAME "component" COMPONENT):
the name and component labels are the ones the workloads' selectors have always used, so an
install made with `kubectl apply -k manifests/` keeps its selectors. */}}
{{- define "headroom.labels" -}}
app.kubernetes.io/name: {{ .name }}
app.kubernetes.io/component: {{ .component }}
app.kubernetes.io/part-of: headroom
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .ctx.Chart.Name .ctx.Chart.Version }}
{{- end }}

{{/* Headroom's own image: one image runs every Headroom process. */}}
{{- define "headroom.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end }}

{{/* The stock kube-scheduler beside the extender: the cluster's own release unless a tag is set
(a GKE or EKS version such as v1.33.5-gke.1000 is cut to v1.33.5, the upstream tag). */}}
{{- define "headroom.schedulerImage" -}}
{{- $tag := .Values.scheduler.image.tag -}}
{{- if not $tag -}}
{{- $tag = regexFind "^v[0-9]+\\.[0-9]+\\.[0-9]+" .Capabilities.KubeVersion.Version -}}
{{- end -}}
{{- if not $tag -}}
{{- fail (printf "scheduler.image.tag: cannot tell the kube-scheduler tag from the cluster's version %q; set it" .Capabilities.KubeVersion.Version) -}}
{{- end -}}
{{ .Values.scheduler.image.repository }}:{{ $tag }}
{{- end }}

{{/* The platform preset as a dict: the label marking GPU nodes (key, value; an empty value means
any value), whether nodes carry nvidia.com/gpu.memory, and the node preference of the gpu-large
profile. gpuNodes.* values override the first two. */}}
{{- define "headroom.platform" -}}
{{- $presets := dict
  "generic" (dict "key" "nvidia.com/gpu.present" "value" "true" "memoryLabel" true
    "largeKey" "nvidia.com/gpu.family" "largeValues" (list "ampere" "hopper"))
  "gke" (dict "key" "cloud.google.com/gke-accelerator" "value" "" "memoryLabel" false
    "largeKey" "cloud.google.com/gke-accelerator"
    "largeValues" (list "nvidia-tesla-a100" "nvidia-a100-80gb" "nvidia-h100-80gb" "nvidia-h100-mega-80gb" "nvidia-h200-141gb"))
-}}
{{- $preset := deepCopy (get $presets .Values.platform) -}}
{{- with .Values.gpuNodes -}}
{{- if and .labelValue (not .labelKey) }}{{ fail "gpuNodes.labelValue: set gpuNodes.labelKey too (the value is of that label)" }}{{ end -}}
{{- if .labelKey }}{{ $_ := set $preset "key" .labelKey }}{{ $_ := set $preset "value" .labelValue }}{{ end -}}
{{- if not (kindIs "invalid" .memoryLabel) }}{{ $_ := set $preset "memoryLabel" .memoryLabel }}{{ end -}}
{{- end -}}
{{- toYaml $preset -}}
{{- end }}

{{/* The node requirement that marks a GPU node, as one node selector requirement (flow style). */}}
{{- define "headroom.gpuNodeRequirement" -}}
{{- $p := include "headroom.platform" . | fromYaml -}}
{{- if $p.value -}}
{key: {{ $p.key }}, operator: In, values: [{{ $p.value | quote }}]}
{{- else -}}
{key: {{ $p.key }}, operator: Exists}
{{- end -}}
{{- end }}
