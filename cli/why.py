"""`kubectl headroom why POD`: why a pending pod fits no node, or where Headroom would put it.

The answer comes from the extender's own code on the live view (`cli.live`): per node, the
extender's `filter_nodes` (with its DRA gate) gives the verdict and the reason, word for word as
the scheduler would hear it, and `prioritize` the score of each node that fits. Nodes the
scheduler's own filters keep off before asking Headroom are named as such (`cli.prefilter`).
A pod that is bound, finished, not Headroom's, or asks for no GPU is said to be so.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cli import api, prefilter
from cli.cluster import CliError
from headroom import names

if TYPE_CHECKING:
    from cli.cluster import Cluster
    from cli.live import LiveView
    from extender.verbs import Settings
    from headroom.demand import GpuDemand

JsonDict = dict[str, Any]
# States of a pod, as `why` reports them (the JSON's "state").
PENDING, BOUND, FINISHED, UNMANAGED, NO_GPU, REFUSED = (
    "pending",
    "bound",
    "finished",
    "unmanaged",
    "no-gpu",
    "refused",
)
FITS, SCHEDULER = "fits", "scheduler"  # verdict kinds beside the extender's ReasonKind values


@dataclass(frozen=True)
class Gpu:
    index: int | None  # None: the GPU is not in the node's report
    uuid: str


@dataclass(frozen=True)
class NodeVerdict:
    node: str
    fits: bool
    kind: str  # "fits", a ReasonKind value (memory, too-small, stale, ...), or "scheduler"
    reason: str  # the extender's reason, or the scheduler filter's; "" when the pod fits
    score: int | None = None  # 0..10, the extender's prioritize, for a node that fits
    gpus: tuple[Gpu, ...] = ()  # the GPUs Headroom would give it there
    resolvable: bool = True  # False: no GPU on the node could ever hold the pod
    best_free_bytes: int = 0  # the most free memory the node offers the pod
    scheduler_filter: str = ""  # for kind "scheduler": which of its filters (cli.prefilter)


@dataclass(frozen=True)
class Explanation:
    namespace: str
    name: str
    state: str
    headline: str
    demand: GpuDemand | None = None
    policy: str = ""
    nodes: tuple[NodeVerdict, ...] = ()
    summary: str = ""
    notes: tuple[str, ...] = ()  # the scheduler's own message, scheduling gates
    bound_node: str = ""
    bound_gpus: tuple[Gpu, ...] = ()


def explain(
    cluster: Cluster,
    name: str,
    *,
    namespace: str,
    now_unix_seconds: float,
    settings: Settings,
    load: Callable[[Cluster], LiveView],
) -> Explanation:
    """The pod's explanation from the live view; CliError when the pod does not exist."""
    from kubeapi.client import NotFound  # noqa: PLC0415

    try:
        pod = cluster.get(api.pod(namespace, name))
    except NotFound as exc:
        raise CliError(f'pod "{name}" not found in namespace {namespace}') from exc
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    phase = str(status.get("phase") or "Pending")
    if spec.get("nodeName"):
        return _bound(pod, load(cluster), phase=phase)
    if phase in ("Succeeded", "Failed"):
        return Explanation(namespace, name, FINISHED, f"pod {namespace}/{name} is {phase}")
    outside = _not_managed(cluster, pod)
    if outside is not None:
        return Explanation(namespace, name, UNMANAGED, outside)
    return judge(pod, load(cluster), now_unix_seconds=now_unix_seconds, settings=settings)


def _not_managed(cluster: Cluster, pod: JsonDict) -> str | None:
    """Why the headroom scheduler never sees the pod; None when it does."""
    from headroom.demand import is_managed  # noqa: PLC0415

    meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
    scheduler = str(spec.get("schedulerName") or names.DEFAULT_SCHEDULER_NAME)
    if scheduler == names.SCHEDULER_NAME:
        return None
    ref = f"pod {meta.get('namespace')}/{meta.get('name')}"
    label = f"{names.MANAGED_LABEL}={names.MANAGED_VALUE}"
    if scheduler != names.DEFAULT_SCHEDULER_NAME:
        return (
            f"{ref} is not managed by Headroom: it names its own scheduler {scheduler!r}, and "
            f"Headroom places only pods of the scheduler {names.SCHEDULER_NAME!r}"
        )
    if is_managed(pod) or _namespace_managed(cluster, str(meta.get("namespace", ""))):
        return (
            f"{ref} carries {label} (or its namespace does) but its schedulerName is "
            f"{scheduler}: the webhook did not mutate it (was the webhook running and its "
            "objectSelector matching when the pod was created?), so Headroom never places it"
        )
    return (
        f"{ref} is not managed by Headroom: neither it nor its namespace carries {label}, and "
        f"its schedulerName is {scheduler}"
    )


def _namespace_managed(cluster: Cluster, namespace: str) -> bool:
    """Whether the namespace opts its pods in; False when it cannot be read (the pod's own
    schedulerName has already said Headroom does not place it)."""
    from kubeapi.client import ApiError  # noqa: PLC0415

    try:
        obj = cluster.get(api.namespace(namespace))
    except (ApiError, CliError):  # a hint only: any failure leaves it unknown
        return False
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return bool(labels.get(names.MANAGED_LABEL) == names.MANAGED_VALUE)


def _bound(pod: JsonDict, live: LiveView, *, phase: str) -> Explanation:
    """Where a bound pod is, with the GPUs it holds as far as Headroom knows them."""
    meta = pod.get("metadata") or {}
    node, uid = str(pod["spec"]["nodeName"]), str(meta.get("uid", ""))
    snapshot = live.view.snapshot(node)
    report = snapshot.report
    seen = [g.uuid for g in report.gpus if any(p.uid == uid for p in g.pods)] if report else []
    named = next((c.gpu_uuids for c in snapshot.claims if c.uid == uid), ())
    gpus = tuple(_gpu(live, node, u) for u in dict.fromkeys([*seen, *named]))
    held = ", ".join(_gpu_words(g) for g in gpus) or (
        "GPUs not known to Headroom yet (the node agent has not reported the pod)"
    )
    ref = f"pod {meta.get('namespace')}/{meta.get('name')}"
    return Explanation(
        str(meta.get("namespace", "")),
        str(meta.get("name", "")),
        BOUND,
        f"{ref} is not pending: it is bound to {node} ({phase}) with {held}",
        bound_node=node,
        bound_gpus=gpus,
    )


def judge(
    pod: JsonDict, live: LiveView, *, now_unix_seconds: float, settings: Settings
) -> Explanation:
    """A pending Headroom pod, node by node, as the extender's filter and prioritize judge it."""
    from extender.verbs import PolicyError, pod_demand, pod_policy  # noqa: PLC0415
    from headroom.demand import DemandError  # noqa: PLC0415

    meta = pod.get("metadata") or {}
    namespace, name = str(meta.get("namespace", "")), str(meta.get("name", ""))
    ref = f"pod {namespace}/{name}"
    notes = _scheduler_notes(pod)
    try:
        demand, _ = pod_demand(pod, live.view.dra.lookups())
        policy = pod_policy(pod, settings.policy)
    except (DemandError, PolicyError) as exc:
        refused = f"{ref} is pending; the extender refuses it: {exc}"
        return Explanation(namespace, name, REFUSED, refused, notes=notes)
    if demand is None:
        return Explanation(
            namespace,
            name,
            NO_GPU,
            f"{ref} is pending but asks for no GPU: Headroom passes it on every node",
            notes=notes,
        )
    verdicts = _verdicts(pod, demand, live, now_unix_seconds=now_unix_seconds, settings=settings)
    return Explanation(
        namespace,
        name,
        PENDING,
        f"{ref} is pending: not bound to a node yet",
        demand=demand,
        policy=policy.value,
        nodes=tuple(sorted(verdicts, key=_rank)),
        summary=summary_line(demand, verdicts, policy=policy.value),
        notes=notes,
    )


def _verdicts(
    pod: JsonDict, demand: GpuDemand, live: LiveView, *, now_unix_seconds: float, settings: Settings
) -> list[NodeVerdict]:
    from extender.dracheck import DraGate  # noqa: PLC0415
    from extender.verbs import filter_nodes, prioritize  # noqa: PLC0415

    view, lookups = live.view, live.view.dra.lookups()
    gate = DraGate(view, settings=settings, clock=lambda: now_unix_seconds)
    uid = str((pod.get("metadata") or {}).get("uid") or "")
    verdicts: dict[str, NodeVerdict] = {}
    passed: list[str] = []
    for node in live.nodes:
        node_name = str(node["metadata"]["name"])
        excluded = prefilter.exclusion(pod, node)
        if excluded is not None:
            verdicts[node_name] = NodeVerdict(
                node_name, False, SCHEDULER, excluded[1], scheduler_filter=excluded[0]
            )
            continue
        # One node per call: the counts then say which kind of reason this node got.
        outcome = filter_nodes(
            pod,
            [node_name],
            None,
            summaries=view.summaries,
            now_unix_seconds=now_unix_seconds,
            settings=settings,
            dra=lookups,
            dra_check=lambda n, d, c: gate.check(n, d, c, pod_uid=uid),
        )
        if outcome.result.get("NodeNames"):
            passed.append(node_name)
            continue
        kind = next(k for k, count in outcome.counts.items() if k != "passed" and count)
        verdicts[node_name] = NodeVerdict(
            node_name,
            False,
            kind,
            outcome.result["FailedNodes"][node_name],
            resolvable=node_name not in outcome.result["FailedAndUnresolvableNodes"],
            best_free_bytes=_best_free(demand, live, node_name),
        )
    scores = prioritize(pod, passed, summaries=view.summaries, settings=settings, dra=lookups)
    for entry in scores:
        node_name = entry["Host"]
        verdicts[node_name] = NodeVerdict(
            node_name,
            True,
            FITS,
            "",
            score=entry["Score"],
            gpus=_chosen(pod, demand, live, node_name, now=now_unix_seconds, settings=settings),
            best_free_bytes=_best_free(demand, live, node_name),
        )
    return list(verdicts.values())


def _best_free(demand: GpuDemand, live: LiveView, node_name: str) -> int:
    from headroom.fit import best_offer  # noqa: PLC0415

    summary = live.view.summary(node_name)
    best = best_offer(demand, summary) if summary.report is not None else None
    return best[0] if best else 0


def _chosen(
    pod: JsonDict,
    demand: GpuDemand,
    live: LiveView,
    node_name: str,
    *,
    now: float,
    settings: Settings,
) -> tuple[Gpu, ...]:
    """The GPUs the pod would get on a node that fits: its claims' GPUs once allocated, else
    what `fit` places (for an unallocated DRA pod the allocator chooses; none are named)."""
    from extender.verbs import pod_demand, pod_policy  # noqa: PLC0415
    from headroom.fit import Fit, fit_summary  # noqa: PLC0415

    _, claims = pod_demand(pod, live.view.dra.lookups())
    if claims.allocated:
        return tuple(_gpu(live, node_name, u) for u in claims.gpu_uuids)
    if demand.dra:
        return ()
    verdict = fit_summary(
        demand,
        live.view.summary(node_name),
        now_unix_seconds=now,
        staleness_seconds=settings.staleness_seconds,
        policy=pod_policy(pod, settings.policy),
    )
    return (
        tuple(_gpu(live, node_name, u) for u in verdict.gpu_uuids)
        if isinstance(verdict, Fit)
        else ()
    )


def _gpu(live: LiveView, node_name: str, uuid: str) -> Gpu:
    report = live.view.report(node_name)
    index = next((g.index for g in report.gpus if g.uuid == uuid), None) if report else None
    return Gpu(index, uuid)


def _gpu_words(gpu: Gpu) -> str:
    return f"GPU {gpu.index} ({gpu.uuid})" if gpu.index is not None else gpu.uuid


def _scheduler_notes(pod: JsonDict) -> tuple[str, ...]:
    """What the pod itself says about its scheduling: gates, and the scheduler's last word."""
    notes = []
    gates = [str(g.get("name")) for g in (pod.get("spec") or {}).get("schedulingGates") or []]
    if gates:
        notes.append(f"scheduling gates hold it back until removed: {', '.join(gates)}")
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "PodScheduled" and condition.get("status") == "False":
            said = condition.get("message") or condition.get("reason") or ""
            if said:
                notes.append(f"the scheduler said: {said}")
    return tuple(notes)


# Best first: fits by score; then the nodes closest to fitting (memory that may free up), the
# ones whose reports are not usable now, the ones that can never hold it, the ones never asked.
_KIND_RANK = {FITS: 0, "memory": 1, "stale": 2, "unreadable": 3, "no-report": 4, SCHEDULER: 6}


def _rank(verdict: NodeVerdict) -> tuple[int, int, str]:
    rank = _KIND_RANK.get(verdict.kind, 5) if verdict.resolvable else 5
    closeness = verdict.score if verdict.fits and verdict.score is not None else 0
    return (rank, -(closeness if verdict.fits else verdict.best_free_bytes), verdict.node)


def summary_line(demand: GpuDemand, verdicts: list[NodeVerdict], *, policy: str) -> str:
    """One line: where Headroom would put the pod, or why it fits nowhere, counted by reason."""
    from cli.whytext import fits_nowhere  # noqa: PLC0415

    fitting = sorted((v for v in verdicts if v.fits), key=_rank)
    if not fitting:
        return fits_nowhere(demand, verdicts)
    best = fitting[0]
    on = f", {', '.join(_gpu_words(g) for g in best.gpus)}" if best.gpus else ""
    line = f"would go to {best.node}{on}: score {best.score} of 10 ({policy})"
    tied = sum(v.score == best.score for v in fitting) - 1
    if tied:
        line += (
            f"; {tied} other {'node scores' if tied == 1 else 'nodes score'} the same, and "
            "the scheduler's own scores choose among them"
        )
    return line
