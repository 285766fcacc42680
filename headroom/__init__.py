"""Headroom: the shared contract of the webhook, the scheduler extender and the node agent.

Pure modules here (`names`, `quantity`, `demand`, `state`, `fit`) import no client library;
`kube` and `cache` are the edge to the Kubernetes API, `cli` the command-line entry point.
"""

__version__ = "0.1.0"
