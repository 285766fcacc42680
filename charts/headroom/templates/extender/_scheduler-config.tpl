{{/* The KubeSchedulerConfiguration of the headroom scheduler. */}}
{{- define "headroom.schedulerConfig" -}}
# The second scheduler: profile "headroom", with the extender as a sidecar on localhost.
# The e2e tests and the demo run this file as shipped, filling in only the extender's address and
# the kubeconfig path (tooling/shipped.py).
apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
leaderElection:
  leaderElect: true
  resourceName: headroom-scheduler
  resourceNamespace: {{ .Release.Namespace }}
profiles:
  - schedulerName: headroom
# A pod the extender turned away is retried soon after headroom appears (the extender touches
# it); a short maximum backoff keeps that retry within seconds.
podInitialBackoffSeconds: 1
podMaxBackoffSeconds: 4
extenders:
  - urlPrefix: http://127.0.0.1:{{ .Values.extender.port }}
    filterVerb: filter
    prioritizeVerb: prioritize
    bindVerb: bind
    # Scores are 0..10; the weight makes GPU packing outweigh the default plugins' preferences.
    weight: 5
    nodeCacheCapable: true
    # Measured worst case for filter+prioritize+bind is well under a second (docs/benchmarks.md).
    httpTimeout: 5s
    enableHTTPS: false  # loopback inside the pod
    ignorable: false  # without the extender, GPU pods wait rather than land blind
{{- end }}
