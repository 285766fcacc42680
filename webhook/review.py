"""One AdmissionReview in, one answer out: the decision and the JSONPatch, with no I/O.

`review(body, profiles, version=...)` takes the raw request body and returns a `ReviewOutcome`:
the HTTP status and JSON body to send, plus what the logs and metrics record. A body that is not an
`admission.k8s.io/v1` AdmissionReview with a `request.uid` gets HTTP 400; everything else gets
an AdmissionReview carrying the request's uid: non-Pod objects, operations other than CREATE and
unmanaged pods are allowed untouched, a managed pod with bad annotations is denied with a message
naming the annotation, and a managed GPU pod is answered with the base64 JSONPatch that
`mutate_with_patch` recorded while it made its changes (`webhook.patch`; no diff of the pod).

A pod with DRA claims needs them read first, which is I/O: the app reads the body (`read`), asks
`claims_to_read` whose claims those are, reads them (`webhook.claims`) and passes them to `review`
as `lookups` (`webhook.dra` turns them into the pod's demand).
"""

from __future__ import annotations

import base64
import functools
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from headroom import names
from headroom.demand import GpuDemand, is_managed
from headroom.fields import FieldError, read_mapping, read_optional_list, read_optional_mapping
from headroom.podclaims import NO_LOOKUPS, DraLookups, has_claims
from serving.logs import log_fields
from webhook import refusals
from webhook.dra import pod_demand
from webhook.mutate import MutationError, mutate_with_patch
from webhook.profiles import ProfileSet
from webhook.wire import (
    ADMISSION_API_VERSION,
    ADMISSION_KIND,
    PATCH_TYPE,
    AdmissionResponse,
    AdmissionReview,
    ErrorBody,
)

log = logging.getLogger("webhook.review")
JsonPod = dict[str, Any]

# Results, as counted in /metrics and logged.
PATCHED, UNCHANGED, IGNORED, DENIED, INVALID, ERROR = (
    "patched",
    "unchanged",
    "ignored",
    "denied",
    "invalid",
    "error",
)
RESULTS = (PATCHED, UNCHANGED, IGNORED, DENIED, INVALID, ERROR)


@dataclass(frozen=True)
class ReviewOutcome:
    status: int
    body: AdmissionReview | ErrorBody
    result: str
    log: Mapping[str, Any] = field(default_factory=dict)  # uid, pod, profile, ... for the logs
    profile: str = ""
    operations: int = 0


class BadReview(FieldError):
    """A body that is not a usable AdmissionReview; `field` names what is wrong (HTTP 400)."""


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


@dataclass(frozen=True)
class Request:
    """The AdmissionRequest of a body that is a usable AdmissionReview."""

    fields: Mapping[str, Any]


def read(body: bytes) -> Request | ReviewOutcome:
    """The request a body carries, or the HTTP 400 outcome of a body that is not one."""
    try:
        document = json.loads(body, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        return _bad(BadReview("body", f"not JSON: {exc}"))
    try:
        return Request(_request(document))
    except BadReview as exc:
        return _bad(exc)


def claims_to_read(request: Request, *, namespace_opted_in: bool) -> tuple[str, JsonPod] | None:
    """(namespace, pod) when `review` will look the pod's DRA claims up: a Pod CREATE that opted
    in (by label, or by namespace) with `spec.resourceClaims`; None for every other request."""
    fields = request.fields
    pod = fields.get("object")
    if not _pod_create(fields) or not isinstance(pod, dict):
        return None
    if not has_claims(pod) or not (namespace_opted_in or is_managed(pod)):
        return None
    return _namespace(fields, pod), pod


def review(
    body: bytes | Request,
    profiles: ProfileSet,
    *,
    version: str,
    namespace_opted_in: bool = False,
    lookups: DraLookups = NO_LOOKUPS,
) -> ReviewOutcome:
    """Answer one request body (or the request `read` made of it); never raises.
    `namespace_opted_in`: the request came through the webhook for namespaces labelled
    `headroom.dev/managed: "true"`, so its GPU pods are managed without a label of their own.
    `lookups`: the pod's ResourceClaims and templates, read by the caller (`claims_to_read`)."""
    parsed = read(body) if isinstance(body, bytes) else body
    if isinstance(parsed, ReviewOutcome):
        return parsed
    request = parsed.fields
    uid: str = request["uid"]
    fields = _log_fields(request)
    try:
        response, result, profile, operations = _decide(
            request,
            profiles,
            version=version,
            namespace_opted_in=namespace_opted_in,
            lookups=lookups,
        )
    except Exception:  # a bug must not become a 500 the API server cannot explain to the user
        log.exception("review failed", extra=log_fields(**fields))
        response = _deny(uid, f"internal error in the Headroom webhook; see its logs for uid {uid}")
        result, profile, operations = ERROR, "", 0
    if not response["allowed"]:
        fields = {**fields, "message": response.get("status", {}).get("message", "")}
    outcome_review: AdmissionReview = {
        "apiVersion": ADMISSION_API_VERSION,
        "kind": ADMISSION_KIND,
        "response": response,
    }
    return ReviewOutcome(
        status=200,
        body=outcome_review,
        result=result,
        log={**fields, "result": result, "profile": profile, "operations": operations},
        profile=profile,
        operations=operations,
    )


def _bad(error: BadReview) -> ReviewOutcome:
    body: ErrorBody = {"error": str(error), "field": error.field}
    return ReviewOutcome(
        status=400, body=body, result=INVALID, log={"result": INVALID, "message": str(error)}
    )


def _request(document: object) -> dict[str, Any]:
    document = read_mapping(
        document, "body", expected="a JSON object (an AdmissionReview)", show=None, error=BadReview
    )
    if document.get("apiVersion") != ADMISSION_API_VERSION:
        raise BadReview(
            "apiVersion", f"expected {ADMISSION_API_VERSION!r} (got {document.get('apiVersion')!r})"
        )
    if document.get("kind") != ADMISSION_KIND:
        raise BadReview("kind", f"expected {ADMISSION_KIND!r} (got {document.get('kind')!r})")
    request = dict(
        read_mapping(
            document.get("request"),
            "request",
            show=None,
            error=BadReview,
            expected="an object (the AdmissionRequest)",
        )
    )
    uid = request.get("uid")
    if not isinstance(uid, str) or not uid:
        raise BadReview("request.uid", "required: a non-empty string")
    return request


def _log_fields(request: Mapping[str, Any]) -> dict[str, Any]:
    kind = request.get("kind")
    return {
        "uid": request["uid"],
        "kind": kind.get("kind") if isinstance(kind, dict) else None,
        "namespace": request.get("namespace"),
        "name": request.get("name"),
        "operation": request.get("operation"),
        "dry_run": request.get("dryRun") is True,
    }


def _pod_create(request: Mapping[str, Any]) -> bool:
    kind = request.get("kind")
    is_pod = isinstance(kind, dict) and kind.get("kind") == "Pod" and not kind.get("group")
    return is_pod and not request.get("subResource") and request.get("operation") == "CREATE"


def _namespace(request: Mapping[str, Any], pod: JsonPod) -> str:
    metadata = pod.get("metadata")
    own = metadata.get("namespace") if isinstance(metadata, Mapping) else None
    return str(request.get("namespace") or own or "")


def _decide(
    request: Mapping[str, Any],
    profiles: ProfileSet,
    *,
    version: str,
    namespace_opted_in: bool,
    lookups: DraLookups,
) -> tuple[AdmissionResponse, str, str, int]:
    uid: str = request["uid"]
    if not _pod_create(request):
        return _allow(uid), IGNORED, "", 0
    pod = request.get("object")
    if not isinstance(pod, dict):
        return _deny(uid, "request.object: expected the Pod being created"), DENIED, "", 0
    # Computed once, when first needed: a labelled pod's profile is checked first.
    demand = functools.cache(lambda: pod_demand(pod, lookups, namespace=_namespace(request, pod)))
    try:
        _check_shape(pod)
        labelled = is_managed(pod)
        if not labelled and not namespace_opted_in:
            return _allow(uid), IGNORED, "", 0
        if not labelled and demand() is None:
            return _allow(uid), IGNORED, "", 0  # a namespace's pods without GPUs: not ours
        return _decide_managed(uid, pod, profiles, demand, version=version)
    except FieldError as exc:  # DemandError, MutationError, a malformed claim or template
        return _deny(uid, str(exc)), DENIED, "", 0


def _decide_managed(
    uid: str,
    pod: dict[str, Any],
    profiles: ProfileSet,
    demand_of: Callable[[], GpuDemand | None],
    *,
    version: str,
) -> tuple[AdmissionResponse, str, str, int]:
    annotations = pod.get("metadata", {}).get("annotations") or {}
    name = annotations.get(names.PROFILE_ANNOTATION, names.DEFAULT_PROFILE)
    profile = profiles.get(name)
    if profile is None:
        known = ", ".join(sorted(profiles.profiles))
        return (
            _deny(
                uid,
                f"{names.PROFILE_ANNOTATION}: unknown profile {name!r} (expected one of: {known})",
            ),
            DENIED,
            "",
            0,
        )
    demand = demand_of()
    if demand is None:
        warning = (
            f"{names.MANAGED_LABEL} is set but the pod asks for no GPU (no "
            f"{names.GPU_MEMORY_ANNOTATION} annotation, no {names.GPU_RESOURCE} limit, no "
            "ResourceClaim of a GPU DeviceClass); Headroom left it unchanged"
        )
        return {**_allow(uid), "warnings": [warning]}, IGNORED, name, 0
    problem = refusals.before_mutation(pod, demand, profile)
    if problem:
        return _deny(uid, problem), DENIED, name, 0
    mutated, operations = mutate_with_patch(pod, profile, demand=demand, version=version)
    problem = refusals.after_mutation(mutated, demand, profile)
    if problem:
        return _deny(uid, problem), DENIED, name, 0
    if not operations:
        return _allow(uid), UNCHANGED, name, 0
    patch = base64.b64encode(json.dumps(operations, separators=(",", ":")).encode()).decode()
    response: AdmissionResponse = {
        "uid": uid,
        "allowed": True,
        "patchType": PATCH_TYPE,
        "patch": patch,
    }
    return response, PATCHED, name, len(operations)


def _check_shape(pod: Mapping[str, Any]) -> None:
    """The fields the demand and the mutation read must have their JSON types, as the API server
    guarantees for real pods; anything else is refused naming the field."""
    metadata = _object(pod, "metadata", "metadata")
    for key in ("labels", "annotations"):
        values = _object(metadata, key, f"metadata.{key}")
        for k, v in values.items():
            if not isinstance(v, str):
                raise MutationError(f"metadata.{key}[{k}]", "expected a string")
    spec = _object(pod, "spec", "spec")
    for key in ("containers", "initContainers"):
        containers = read_optional_list(
            spec.get(key), f"spec.{key}", show=None, error=MutationError
        )
        for i, container in enumerate(containers):
            where = f"spec.{key}[{i}]"
            checked = read_mapping(container, where, show=None, error=MutationError)
            resources = _object(checked, "resources", f"{where}.resources")
            for kind in ("limits", "requests"):
                _object(resources, kind, f"{where}.resources.{kind}")


def _object(holder: Mapping[str, Any], key: str, field: str) -> Mapping[str, Any]:
    """`holder[key]` if it is an object (missing or null: an empty one), else MutationError."""
    return read_optional_mapping(holder.get(key), field, show=None, error=MutationError)


def _allow(uid: str) -> AdmissionResponse:
    return {"uid": uid, "allowed": True}


def _deny(uid: str, message: str) -> AdmissionResponse:
    return {
        "uid": uid,
        "allowed": False,
        "status": {"code": 400, "reason": "BadRequest", "message": message},
    }
