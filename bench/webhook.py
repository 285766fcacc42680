"""Benchmark of the admission webhook, each number against a baseline taken in the same run.

(a) In process, over the corpus pods (bench/webhook_inprocess.py): `review()` (parse, decide,
    mutate, JSONPatch, encode) p50/p99 per call; baseline: `json.loads` + `json.dumps` of the
    same bodies, the least any review must do. Target: review p99 <= 3x the baseline's p99.
    Beside it `mutate()` alone and the former review (a `make_patch` diff), alternating legs.
(b) HTTPS with keep-alive at concurrency 8 through gunicorn, as the Deployment runs it
    (`--workers 2 --threads 2`, JSON access log on): reviews/s and p99; baseline: `GET /healthz`
    on the same server and connections (the cost of the transport alone). Target: >= 1,000
    reviews/s with p99 <= 10 ms. The load comes from `wrk` when installed (Debian package `wrk`;
    C, so the client takes little of the two cores), else from Python: http.client persistent
    connections, 4 threads in each of 2 processes.
(c) A real kube-apiserver (LocalCluster): pod creates/s with 8 concurrent clients into a
    namespace the webhook is registered for ÷ into one it is not, alternating, same run.
    Target: >= 0.85, judged with `--pin`: the control plane (etcd, kube-apiserver,
    kube-controller-manager) on CPU 0, the webhook and the clients on CPU 1, in both legs alike,
    as separate machines share nothing.

Run: `.venv/bin/python -m bench.webhook [--pin]` (about two minutes; needs `make control-plane`);
`--parts a` runs (a) alone (seconds; no server, no control plane). The run's versions come first.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import uuid
from pathlib import Path
from typing import Any

from bench.runinfo import versions_line
from bench.webhook_inprocess import (
    LEG_PASSES,
    Row,
    in_process,
    measure_in_process,
    rows_a,
    spread_lines,
    verdict,
)
from bench.webhook_load import (
    CONCURRENCY,
    CpuMeter,
    _children,
    creates_per_second,
    python_run,
    wrk_run,
)
from kubeapi.client import ApiError, Kube, load_api_client
from tests.waiting import wait_for
from tests.webhook.helpers import PROFILES_FILE, corpus, encode, review_body
from tests.webhook.server import make_certs, webhook_server
from tooling.localcluster import LocalCluster, ensure_binaries

__all__ = ["in_process", "main"]  # in_process: part (a), which bench/quick.py calls from here

SERVER_FLAGS = ["--workers", "2", "--threads", "2"]


# -- (b) HTTPS with keep-alive ---------------------------------------------------------------------


def over_https(workdir: Path, seconds: float, generator: str, rounds: int) -> dict[str, float]:
    """Median over `rounds` alternating runs: the machine may be shared, and alternating makes
    a busy moment hit the reviews and the baseline alike."""
    certs = make_certs(workdir / "certs")
    profiles = workdir / "profiles.yaml"
    shutil.copyfile(PROFILES_FILE, profiles)
    server = webhook_server(workdir, profiles, certs=certs, extra=SERVER_FLAGS).start()
    run = wrk_run if generator == "wrk" else python_run
    body = encode(review_body(corpus()["vllm"]))
    reviews, health = [], []
    try:
        run(server, "/mutate", body, 2)  # warm up connections and workers
        for _ in range(rounds):
            reviews.append(run(server, "/mutate", body, seconds))
            health.append(run(server, "/healthz", None, seconds))
    finally:
        server.stop()
    return {
        "rate": statistics.median(r for r, _ in reviews),
        "p99": statistics.median(p for _, p in reviews),
        "base_rate": statistics.median(r for r, _ in health),
        "base_p99": statistics.median(p for _, p in health),
        "runs": len(reviews),
    }


# -- (c) the real API server -----------------------------------------------------------------------


def api_server(
    workdir: Path, pods: int, rounds: int, *, cpus: frozenset[int] | None = None
) -> dict[str, float]:
    ensure_binaries()
    certs = make_certs(workdir / "certs")
    with LocalCluster(workdir / "cluster", cpus=cpus) as cluster:
        kube = Kube(load_api_client(str(cluster.kubeconfig)))
        label = uuid.uuid4().hex[:8]
        for name, labels in (("plain", {}), ("webhooked", {"bench.headroom.dev/webhook": label})):
            kube.request(
                "POST", "/api/v1/namespaces", body={"metadata": {"name": name, "labels": labels}}
            )
            _wait_for_default_account(kube, name)
        server = webhook_server(workdir, PROFILES_FILE, certs=certs, extra=SERVER_FLAGS).start()
        try:
            cluster.kubectl(
                "apply",
                "-f",
                "-",
                input_text=json.dumps(
                    _registration(server.port, (certs / "cabundle.txt").read_text().strip(), label)
                ),
            )
            _wait_for_webhook(kube)
            creates_per_second(kube, "plain", pods // 4)  # warm up both paths
            creates_per_second(kube, "webhooked", pods // 4)
            assert server.process is not None
            cpu = CpuMeter(
                {
                    "kube-apiserver": [cluster.processes["kube-apiserver"].popen.pid],
                    "etcd": [cluster.processes["etcd"].popen.pid],
                    "webhook": [server.process.pid, *_children(server.process.pid)],
                }
            )
            runs: dict[str, list[float]] = {"plain": [], "webhooked": []}
            for _ in range(rounds):  # alternate, so drift in the machine's load hits both
                for namespace, rates in runs.items():
                    with cpu.measure(namespace, pods):
                        rates.append(creates_per_second(kube, namespace, pods))
        finally:
            server.stop()
    result = {
        "with": statistics.median(runs["webhooked"]),
        "without": statistics.median(runs["plain"]),
    }
    for key, milliseconds in cpu.per_create().items():
        result[f"cpu:{key}"] = milliseconds
    return result


def _wait_for_webhook(kube: Kube) -> None:
    pod = corpus()["vllm"]
    pod["metadata"]["namespace"] = "webhooked"

    def mutated() -> bool:
        created = kube.request(
            "POST", "/api/v1/namespaces/webhooked/pods", query={"dryRun": "All"}, body=pod
        )
        return "headroom.dev/mutated-by" in created["metadata"]["annotations"]

    wait_for(mutated, timeout_seconds=30, message="the webhook in use")


def _wait_for_default_account(kube: Kube, namespace: str) -> None:
    def exists() -> bool:
        try:
            kube.request("GET", f"/api/v1/namespaces/{namespace}/serviceaccounts/default")
        except ApiError:
            return False
        return True

    wait_for(exists, timeout_seconds=60, message="the default service account")


def _registration(port: int, ca_bundle: str, label: str) -> dict[str, Any]:
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": "headroom-bench"},
        "webhooks": [
            {
                "name": "pods.webhook.headroom.dev",
                "admissionReviewVersions": ["v1"],
                "sideEffects": "None",
                "failurePolicy": "Fail",
                "reinvocationPolicy": "IfNeeded",
                "timeoutSeconds": 5,
                # By URL on loopback: no Services or kube-proxy in the LocalCluster.
                "clientConfig": {"url": f"https://127.0.0.1:{port}/mutate", "caBundle": ca_bundle},
                "rules": [
                    {
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "operations": ["CREATE"],
                        "resources": ["pods"],
                        "scope": "Namespaced",
                    }
                ],
                "objectSelector": {"matchLabels": {"headroom.dev/managed": "true"}},
                "namespaceSelector": {"matchLabels": {"bench.headroom.dev/webhook": label}},
            }
        ],
    }


# -- the table -------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--parts", default="abc", help="which parts to run, e.g. `a` for (a) alone (default abc)"
    )
    parser.add_argument("--rounds", type=int, default=400, help="(a): passes over the corpus")
    parser.add_argument("--seconds", type=float, default=8, help="(b): seconds per load run")
    parser.add_argument("--https-rounds", type=int, default=3, help="(b): alternating runs")
    parser.add_argument("--pods", type=int, default=300, help="(c): pods per create run")
    parser.add_argument("--api-rounds", type=int, default=3, help="(c): alternating runs")
    parser.add_argument("--load-generator", choices=["auto", "wrk", "python"], default="auto")
    parser.add_argument(
        "--pin",
        action="store_true",
        help="control plane on CPU 0; the webhook, clients and load on CPU 1",
    )
    args = parser.parse_args()
    if not args.parts or set(args.parts) - set("abc"):
        parser.error(f"--parts: expected letters among a, b, c (got {args.parts!r})")
    if args.pin:  # this process, and so the webhook and load generators it starts
        os.sched_setaffinity(0, {1})
    generator = args.load_generator
    if generator == "auto":
        generator = "wrk" if shutil.which("wrk") else "python"
    print(versions_line())
    rows: list[Row] = []
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench-webhook-") as tmp:
        if "a" in args.parts:
            a = measure_in_process(args.rounds)
            rows += rows_a(a)
            notes += spread_lines(a)
        if "b" in args.parts:
            rows += _rows_b(
                over_https(Path(tmp) / "https", args.seconds, generator, args.https_rounds)
            )
        if "c" in args.parts:
            cpus = frozenset({0}) if args.pin else None
            rows += _rows_c(api_server(Path(tmp) / "api", args.pods, args.api_rounds, cpus=cpus))
    print(
        f"\nload generator for (b): {generator}; (a) alternates its legs "
        f"({LEG_PASSES} passes over the corpus each), (b) and (c) are medians of "
        f"{args.https_rounds} and {args.api_rounds} alternating runs; "
        f"{'pinned: control plane on CPU 0, the rest on CPU 1' if args.pin else 'unpinned'}; "
        "baselines: (a) "
        "json.loads+dumps of the same bodies, (b) GET /healthz on the same server and "
        "connections, (c) the same creates into a namespace the webhook is not registered "
        f"for; load average at the end: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs\n"
    )
    header = ("measure", "Headroom", "baseline", "ratio", "target")
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(5)]
    for row in [header, tuple("-" * w for w in widths), *rows]:
        print(" | ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)))
    print("\n".join(["", *notes]) if notes else "", end="\n" if notes else "")
    return 0


def _rows_b(b: dict[str, float]) -> list[Row]:
    return [
        (
            f"(b) HTTPS c={CONCURRENCY} keep-alive, reviews/s",
            f"{b['rate']:.0f}/s",
            f"{b['base_rate']:.0f}/s",
            f"x{b['rate'] / b['base_rate']:.2f}",
            verdict(b["rate"] >= 1000, ">= 1000/s"),
        ),
        (
            f"(b) HTTPS c={CONCURRENCY} keep-alive, p99",
            f"{b['p99']:.2f} ms",
            f"{b['base_p99']:.2f} ms",
            f"x{b['p99'] / b['base_p99']:.2f}",
            verdict(b["p99"] <= 10, "<= 10 ms"),
        ),
    ]


def _rows_c(c: dict[str, float]) -> list[Row]:
    ratio = c["with"] / c["without"]
    return [
        (
            "(c) apiserver pod creates/s",
            f"{c['with']:.0f}/s",
            f"{c['without']:.0f}/s",
            f"x{ratio:.2f}",
            verdict(ratio >= 0.85, ">= 0.85"),
        ),
        *[
            (
                f"(c) CPU per create: {group}",
                f"{c[f'cpu:webhooked/{group}']:.2f} ms",
                f"{c[f'cpu:plain/{group}']:.2f} ms",
                f"+{c[f'cpu:webhooked/{group}'] - c[f'cpu:plain/{group}']:.2f} ms",
                "-",
            )
            for group in ("kube-apiserver", "etcd", "webhook")
        ],
    ]


if __name__ == "__main__":
    raise SystemExit(main())
