"""`python -m tooling.demo` (`make demo`): Headroom's whole loop on this machine, with real
processes and simulated GPUs.

A local control plane (etcd, kube-apiserver, kube-controller-manager), the `headroom`
kube-scheduler profile with `headroom extender`, `headroom webhook` over TLS, one `headroom
nodeagent` per simulated node on the fake NVML, a simulated kubelet and model servers, and a load
that follows a scenario file (`scenarios/*.yaml`). Modules:

- `model`: what a scenario describes; `scenario`: the scenario file format and its validation;
- `processes`: starting child processes so that none outlives the demo;
- `platform`: the control plane, RBAC, certificates and Headroom's own processes;
- `nodes`: simulated GPU nodes (Node objects, fake NVML state, fake /proc, node agents);
- `kubelet`: runs pods bound to the simulated nodes, with a model-server stand-in each;
- `story`: the workloads, the load timeline and what was observed;
- `view`: the live terminal view; `summary`: the end summary and its checks;
- `run`: bringing it all up, telling the story, tearing everything down; `cli`: the command line.
"""
