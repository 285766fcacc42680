{{/*
Headroom's monitoring pieces (templates/monitoring/): what each component's metrics endpoint is,
and the labels the monitoring objects carry. Everything here is gated by values under
`monitoring:` (values.yaml).
*/}}

{{/* The components Prometheus scrapes, as a list of dicts: name (the job label the alerts use),
component, whether it is installed, the pod selector (the labels the workloads' selectors use),
the container port's name and number, and the scheme. */}}
{{- define "headroom.monitoring.targets" -}}
{{- $m := .Values.monitoring -}}
- name: headroom-nodeagent
  component: nodeagent
  enabled: {{ ((.Values.nodeagent).enabled) | default false }}
  selector: {{ toYaml $m.nodeagent.selector | nindent 4 }}
  port: metrics
  portNumber: {{ $m.nodeagent.port }}
  scheme: http
  honorLabels: false
- name: headroom-extender
  component: scheduler
  enabled: {{ ((.Values.extender).enabled) | default false }}
  selector: {{ toYaml $m.extender.selector | nindent 4 }}
  port: metrics
  portNumber: {{ $m.extender.port }}
  scheme: http
  # The AIScaler series carry the AIScaler's own namespace label, which Prometheus would
  # otherwise rename to exported_namespace in favour of the pod's.
  honorLabels: true
- name: headroom-webhook
  component: webhook
  enabled: {{ ((.Values.webhook).enabled) | default false }}
  selector: {{ toYaml $m.webhook.selector | nindent 4 }}
  port: https
  portNumber: {{ $m.webhook.port }}
  scheme: https
  honorLabels: false
{{- end }}

{{/* Labels of a monitoring object. Call with (dict "ctx" $ "component" COMPONENT). */}}
{{- define "headroom.monitoring.labels" -}}
app.kubernetes.io/name: headroom-monitoring
app.kubernetes.io/component: {{ .component }}
app.kubernetes.io/part-of: headroom
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .ctx.Chart.Name .ctx.Chart.Version }}
{{- with .ctx.Values.monitoring.labels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* How Prometheus checks the webhook's serving certificate: monitoring.webhook.tlsConfig when
set, else the CA in the webhook's TLS Secret (headroom certs generate and cert-manager both
write ca.crt there) and the Service's name, which the certificate carries (the pod IP it is
scraped at is not in it). */}}
{{- define "headroom.monitoring.webhookTls" -}}
{{- if .Values.monitoring.webhook.tlsConfig -}}
{{ toYaml .Values.monitoring.webhook.tlsConfig }}
{{- else -}}
serverName: headroom-webhook.{{ .Release.Namespace }}.svc
ca:
  secret:
    name: headroom-webhook-tls
    key: ca.crt
{{- end -}}
{{- end }}

{{/* The one-or-the-other rule: both kinds would scrape every target twice. */}}
{{- define "headroom.monitoring.check" -}}
{{- if and .Values.monitoring.podMonitors.enabled .Values.monitoring.serviceMonitors.enabled -}}
{{- fail "monitoring.podMonitors.enabled and monitoring.serviceMonitors.enabled: choose one (both would scrape every target twice)" -}}
{{- end -}}
{{- end }}
