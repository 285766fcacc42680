"""The wire formats the webhook speaks: `admission.k8s.io/v1` AdmissionReview, as TypedDicts.

Only the fields Headroom reads or writes are declared; the API server sends more (userInfo,
options, ...) and they are ignored. JSON error bodies for requests that are not an
AdmissionReview at all (HTTP 400) are declared here too.
"""

from __future__ import annotations

from typing import Any, Final, Literal, NotRequired, TypedDict

ADMISSION_API_VERSION = "admission.k8s.io/v1"
ADMISSION_KIND = "AdmissionReview"
PATCH_TYPE: Final = "JSONPatch"


class GroupVersionKind(TypedDict):
    group: str
    version: str
    kind: str


class GroupVersionResource(TypedDict):
    group: str
    version: str
    resource: str


class AdmissionRequest(TypedDict):
    uid: str
    kind: GroupVersionKind
    resource: GroupVersionResource
    subResource: NotRequired[str]
    namespace: NotRequired[str]
    name: NotRequired[str]
    operation: Literal["CREATE", "UPDATE", "DELETE", "CONNECT"]
    object: NotRequired[dict[str, Any]]
    dryRun: NotRequired[bool]


class Status(TypedDict):
    code: int
    reason: str
    message: str


class AdmissionResponse(TypedDict):
    uid: str
    allowed: bool
    patchType: NotRequired[Literal["JSONPatch"]]
    patch: NotRequired[str]  # base64 of the JSON Patch document
    status: NotRequired[Status]
    warnings: NotRequired[list[str]]


class AdmissionReview(TypedDict):
    apiVersion: str
    kind: str
    response: AdmissionResponse


class ErrorBody(TypedDict):
    """What a request that is not a usable AdmissionReview gets, with HTTP 400 (or 404/405/413)."""

    error: str
    field: NotRequired[str]
