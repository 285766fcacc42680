"""Regenerates docs/architecture.png, the architecture picture of the README and
docs/concepts.md, with Graphviz.

    apt-get install graphviz      # Debian's `dot`; only needed to regenerate the picture
    python3 docs/architecture.py  # writes docs/architecture.png (and .dot beside it, --dot)

The PNG is committed, so neither the tests nor an install need Graphviz. The picture shows the
processes, what each watches and writes, and two paths numbered in order: a pod from CREATE to
Ready (blue, 1-8) and one AIScaler round (orange, A-E).
"""

from __future__ import annotations

import argparse
import html
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
POD = "#1f5fbf"  # a pod from CREATE to Ready
SCALER = "#d9730d"  # one AIScaler round
WATCH = "#6b6b6b"  # watches and reports

FONT = "DejaVu Sans"


def node(name: str, title: str, lines: list[str], *, fill: str) -> str:
    """A box with a bold title and smaller lines under it (an HTML-like label)."""
    rows = "".join(
        f'<TR><TD ALIGN="LEFT"><FONT POINT-SIZE="11">{html.escape(line)}</FONT></TD></TR>'
        for line in lines
    )
    label = (
        f'<<TABLE BORDER="0" CELLSPACING="1"><TR><TD><B>{html.escape(title)}</B></TD>'
        f"</TR>{rows}</TABLE>>"
    )
    return f'  {name} [label={label}, fillcolor="{fill}"];'


def edge(
    tail: str, head: str, label: str, *, color: str, style: str = "solid", **attrs: str
) -> str:
    extra = "".join(f', {k}="{v}"' for k, v in attrs.items())
    return (
        f'  {tail} -> {head} [label="{label}", color="{color}", fontcolor="{color}", '
        f'style="{style}"{extra}];'
    )


def graph() -> str:
    legend = (
        "<<B>Headroom: GPU placement and scaling by the memory that is really free</B><BR/>"
        f'<FONT POINT-SIZE="12" COLOR="{POD}">1-8: a pod from CREATE to Ready</FONT>'
        "&#160;&#160;&#160;&#160;"
        f'<FONT POINT-SIZE="12" COLOR="{SCALER}">A-E: one AIScaler round '
        "(every pollingInterval)</FONT>&#160;&#160;&#160;&#160;"
        f'<FONT POINT-SIZE="12" COLOR="{WATCH}">dashed: watches and reports</FONT>>'
    )
    lines = [
        "digraph headroom {",
        f'  graph [rankdir=TB, fontname="{FONT}", fontsize=15, nodesep=0.6, ranksep=0.75,'
        f" pad=0.3, newrank=true, labelloc=t, label={legend}];",
        f'  node [shape=box, style="rounded,filled", fontname="{FONT}", fontsize=13,'
        ' margin="0.15,0.08", color="#444444"];',
        f'  edge [fontname="{FONT}", fontsize=11, penwidth=1.6, arrowsize=0.8];',
        node(
            "user",
            "you / kubectl",
            ["Deployment of managed pods", "AIScaler (seed form)"],
            fill="#ffffff",
        ),
        node("prom", "Prometheus (optional)", ["for type: prometheus metrics"], fill="#ffffff"),
        node(
            "api",
            "kube-apiserver",
            [
                "Pods, Nodes, Bindings, Events",
                "GPUNode and AIScaler (CRDs)",
                "/scale of Deployments",
            ],
            fill="#eef2f7",
        ),
        node(
            "kcm", "kube-controller-manager", ["Deployment -> ReplicaSet -> Pods"], fill="#eef2f7"
        ),
        node(
            "webhook",
            "headroom webhook",
            [
                "mutating admission, TLS, 2 replicas",
                "profile: tolerations, node affinity,",
                "gpu-ready gate, schedulerName",
            ],
            fill="#e3f0ff",
        ),
        "  subgraph cluster_sched { label=<<B>headroom-scheduler pod (one leads)</B>>;"
        ' style="rounded,dashed"; color="#777777"; fontsize=13;',
        node(
            "sched",
            "kube-scheduler",
            ['stock image, profile "headroom"', "extender at 127.0.0.1:8888"],
            fill="#eef2f7",
        ),
        node(
            "ext",
            "headroom extender",
            [
                "caches GPUNodes, Nodes, Pods",
                "fit + score on live free memory",
                "bind with reservations",
                "gpu-ready gate, fast retry",
                "AIScaler: C desired (HPA rules)",
                "-> feasible (what fits now)",
            ],
            fill="#e3f0ff",
        ),
        "  }",
        '  subgraph cluster_node { label=<<B>each GPU node</B>>; style="rounded,dashed";'
        ' color="#777777"; fontsize=13;',
        node(
            "kubelet",
            "kubelet + NVIDIA device plugin",
            ["runs the pod on its GPU(s)"],
            fill="#eef2f7",
        ),
        node("pod", "model-serving pod", ["/metrics: queue depth"], fill="#fff4e0"),
        node(
            "agent",
            "headroom nodeagent",
            ["DaemonSet, hostPID", "NVML: memory, health, XIDs", "process -> pod via /proc cgroup"],
            fill="#e3f0ff",
        ),
        node("gpus", "GPUs", ["read through NVML"], fill="#f3f3f3"),
        "  }",
        # A pod from CREATE to Ready.
        edge("user", "api", "apply", color="#444444"),
        edge("kcm", "api", "1 CREATE pod", color=POD),
        edge("api", "webhook", "2 AdmissionReview\\n3 JSONPatch back", color=POD, dir="both"),
        edge("api", "sched", "watch pending pods", color=WATCH, style="dashed"),
        edge("sched", "ext", "4 filter, prioritize\\n5 bind", color=POD),
        edge("ext", "api", "5 Binding (+ assigned-gpus)\\n8 pod condition gpu-ready", color=POD),
        edge("api", "kubelet", "6 pod bound to its node", color=POD),
        edge("kubelet", "pod", "7 start", color=POD),
        # Reports and watches.
        edge("gpus", "agent", "sampled every 5s", color=WATCH, style="dashed"),
        edge(
            "agent",
            "api",
            "GPUNode status: on change,\\nheartbeat 30s",
            color=WATCH,
            style="dashed",
        ),
        # One AIScaler round.
        edge("api", "ext", "watch GPUNodes,\\nNodes, Pods", color=WATCH, style="dashed"),
        edge("api", "ext", "A AIScaler, its\\ntarget's /scale, pods", color=SCALER),
        edge("ext", "pod", "B scrape :8000/metrics", color=SCALER),
        edge("ext", "prom", "B or query", color=SCALER),
        edge("ext", "api", "D PATCH /scale\\nE status, Events", color=SCALER),
        "  { rank=same; user; kcm; }",
        "  { rank=same; api; webhook; }",
        "  { rank=same; pod; prom; }",
        "  { rank=same; kubelet; agent; }",
        "}",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--out", type=Path, default=HERE / "architecture.png")
    parser.add_argument("--dot", action="store_true", help="also write the .dot source")
    args = parser.parse_args(argv)
    source = graph()
    if args.dot:
        args.out.with_suffix(".dot").write_text(source)
    dot = shutil.which("dot")
    if dot is None:
        print(
            "architecture.py: Graphviz's `dot` is not installed (apt-get install graphviz)",
            file=sys.stderr,
        )
        return 2
    subprocess.run(
        [dot, "-Tpng", "-Gdpi=110", "-o", str(args.out)],
        input=source,
        text=True,
        check=True,
        timeout=60,
    )
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
