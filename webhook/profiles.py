"""Webhook profiles: what each named profile injects into a managed pod, parsed and validated.

Pure: text in, an immutable `ProfileSet` out, or a `ProfileError` whose `path` names the bad key
the way a user finds it in the file (`profiles.gpu-large.tolerations[0].effect`). Fields a
profile leaves out take DESIGN.md's defaults; see `DEFAULTS`. Reading the file and reloading it
on change is `webhook.store`'s job.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from headroom import names
from headroom.fields import (
    FieldError,
    kind_phrase,
    read_bool,
    read_int,
    read_list,
    read_mapping,
    read_str,
)

JsonDict = dict[str, Any]

PROFILES_API_VERSION = f"{names.API_GROUP}/v1alpha1"
PROFILES_KIND = "WebhookProfiles"
EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
TOLERATION_OPERATORS = ("Equal", "Exists")
SELECTOR_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt")
DEFAULT_VISIBLE_DEVICES_ENV = "NVIDIA_VISIBLE_DEVICES"

DEFAULTS: Mapping[str, Any] = {
    "tolerations": [{"key": names.GPU_TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"}],
    "requiredNodeAffinity": [
        {"key": names.GPU_PRESENT_NODE_LABEL, "operator": "In", "values": ["true"]}
    ],
    "preferredNodeAffinity": [],
    "gpuMemoryAffinity": True,
    "readinessGate": True,
    "schedulerName": names.SCHEDULER_NAME,
    "maxGpus": None,
    "sharing": {"allowed": True, "env": DEFAULT_VISIBLE_DEVICES_ENV},
}

_NAME_RE = re.compile(r"[a-z0-9]([-a-z0-9.]{0,61}[a-z0-9])?")
_LABEL_KEY_RE = re.compile(
    r"([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
)
_ENV_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_INTEGER_RE = re.compile(r"-?[0-9]+")


class ProfileError(FieldError):
    """A profiles file that cannot be used; `path` names the key, e.g. `profiles.x.maxGpus`."""

    @property
    def path(self) -> str:
        return self.field


@dataclass(frozen=True)
class Sharing:
    allowed: bool = True
    env: str = DEFAULT_VISIBLE_DEVICES_ENV  # the variable set from the assigned-gpus annotation


@dataclass(frozen=True)
class Profile:
    """One profile, normalized. Tolerations and selector terms are in the pod's JSON form."""

    name: str
    tolerations: tuple[JsonDict, ...] = ()
    required_node_affinity: tuple[JsonDict, ...] = ()
    preferred_node_affinity: tuple[JsonDict, ...] = ()
    gpu_memory_affinity: bool = True
    readiness_gate: bool = True
    scheduler_name: str | None = names.SCHEDULER_NAME
    max_gpus: int | None = None
    sharing: Sharing = field(default_factory=Sharing)
    digest: str = ""  # first 8 hex digits of the sha256 of the normalized profile


@dataclass(frozen=True)
class ProfileSet:
    profiles: Mapping[str, Profile]
    digest: str  # of the whole file, for logs and /metrics

    def get(self, name: str) -> Profile | None:
        return self.profiles.get(name)


def parse_profiles(text: str) -> ProfileSet:
    """Parse and validate a profiles file; ProfileError names the first bad key."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ProfileError("(file)", f"not valid YAML: {exc}") from None
    top = _mapping(document, "(file)", allowed=("apiVersion", "kind", "profiles"))
    for key, expected in (("apiVersion", PROFILES_API_VERSION), ("kind", PROFILES_KIND)):
        if key in top and top[key] != expected:
            raise ProfileError(key, f"expected {expected!r} (got {top[key]!r})")
    if "profiles" not in top:
        raise ProfileError("profiles", "required: a mapping of profile name to profile")
    raw = _mapping(top["profiles"], "profiles")
    if names.DEFAULT_PROFILE not in raw:
        raise ProfileError(
            f"profiles.{names.DEFAULT_PROFILE}",
            "required: pods without the headroom.dev/profile annotation use it",
        )
    profiles = {}
    for name, body in raw.items():
        if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
            raise ProfileError(
                f"profiles.{name}",
                "a profile name is lowercase letters, digits, '-' and '.', at most 63 characters",
            )
        profiles[name] = parse_profile(name, body)
    digest = hashlib.sha256(text.encode()).hexdigest()[:12]
    return ProfileSet(profiles=profiles, digest=digest)


def parse_profile(name: str, body: object) -> Profile:
    path = f"profiles.{name}"
    given = _mapping({} if body is None else body, path, allowed=tuple(DEFAULTS))
    values = {**DEFAULTS, **given}
    sharing = _sharing(values["sharing"], f"{path}.sharing")
    tolerations = _list(values["tolerations"], f"{path}.tolerations", _toleration)
    required = _list(values["requiredNodeAffinity"], f"{path}.requiredNodeAffinity", _requirement)
    preferred = _list(values["preferredNodeAffinity"], f"{path}.preferredNodeAffinity", _preferred)
    profile = Profile(
        name=name,
        tolerations=tuple(tolerations),
        required_node_affinity=tuple(required),
        preferred_node_affinity=tuple(preferred),
        gpu_memory_affinity=_bool(values["gpuMemoryAffinity"], f"{path}.gpuMemoryAffinity"),
        readiness_gate=_bool(values["readinessGate"], f"{path}.readinessGate"),
        scheduler_name=_scheduler_name(values["schedulerName"], f"{path}.schedulerName"),
        max_gpus=_max_gpus(values["maxGpus"], f"{path}.maxGpus"),
        sharing=sharing,
    )
    normalized = json.dumps([*dataclasses.astuple(profile)], sort_keys=True, default=str)
    return dataclasses.replace(profile, digest=hashlib.sha256(normalized.encode()).hexdigest()[:8])


# -- one checker per kind of value ----------------------------------------------------------------


def _mapping(
    value: object, path: str, *, allowed: tuple[str, ...] | None = None
) -> Mapping[str, Any]:
    value = read_mapping(value, path, expected="a mapping", show=kind_phrase, error=ProfileError)
    if allowed is not None:
        for key in value:
            if key not in allowed:
                where = f"{path}.{key}" if path != "(file)" else str(key)
                raise ProfileError(where, f"unknown key (expected one of {', '.join(allowed)})")
    return value


def _list(value: object, path: str, item: Any) -> list[JsonDict]:
    entries = read_list(value, path, show=kind_phrase, error=ProfileError)
    return [item(entry, f"{path}[{i}]") for i, entry in enumerate(entries)]


def _bool(value: object, path: str) -> bool:
    return read_bool(value, path, error=ProfileError)


def _string(value: object, path: str) -> str:
    return read_str(value, path, show=_kind_with_quote_hint, error=ProfileError)


def _kind_with_quote_hint(value: object) -> str:
    """YAML reads `true`, `8` and `1.5` as non-strings; say how to write them as strings."""
    hint = f'; quote it: "{json.dumps(value)}"' if isinstance(value, bool | int | float) else ""
    return f"{kind_phrase(value)}{hint}"


def _one_of(value: object, path: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ProfileError(path, f"expected one of {', '.join(choices)} (got {value!r})")
    return str(value)


def _label_key(value: object, path: str) -> str:
    key = _string(value, path)
    if len(key) > 316 or not _LABEL_KEY_RE.fullmatch(key):
        raise ProfileError(
            path, f"expected a label key such as nvidia.com/gpu.present (got {key!r})"
        )
    return key


def _toleration(value: object, path: str) -> JsonDict:
    given = _mapping(
        value, path, allowed=("key", "operator", "value", "effect", "tolerationSeconds")
    )
    out: JsonDict = {}
    operator = _one_of(given.get("operator", "Equal"), f"{path}.operator", TOLERATION_OPERATORS)
    if "key" in given:
        out["key"] = _label_key(given["key"], f"{path}.key")
    elif operator == "Equal":
        raise ProfileError(f"{path}.key", "required with operator Equal")
    if "operator" in given:
        out["operator"] = operator
    if "value" in given:
        out["value"] = _string(given["value"], f"{path}.value")
        if operator == "Exists" and out["value"]:
            raise ProfileError(f"{path}.value", "must be empty with operator Exists")
    if "effect" in given:
        out["effect"] = _one_of(given["effect"], f"{path}.effect", EFFECTS)
    if "tolerationSeconds" in given:
        seconds = given["tolerationSeconds"]
        if out.get("effect") != "NoExecute":
            raise ProfileError(f"{path}.tolerationSeconds", "only allowed with effect NoExecute")
        out["tolerationSeconds"] = read_int(
            seconds, f"{path}.tolerationSeconds", expected="whole seconds", error=ProfileError
        )
    return out


def _requirement(value: object, path: str) -> JsonDict:
    given = _mapping(value, path, allowed=("key", "operator", "values"))
    if "key" not in given:
        raise ProfileError(f"{path}.key", "required: the node label to match")
    key = _label_key(given["key"], f"{path}.key")
    operator = _one_of(given.get("operator"), f"{path}.operator", SELECTOR_OPERATORS)
    raw_values = read_list(
        given.get("values", []), f"{path}.values", show=kind_phrase, error=ProfileError
    )
    values = [_string(v, f"{path}.values[{i}]") for i, v in enumerate(raw_values)]
    if operator in ("In", "NotIn") and not values:
        raise ProfileError(f"{path}.values", f"at least one value is required with {operator}")
    if operator in ("Exists", "DoesNotExist") and values:
        raise ProfileError(f"{path}.values", f"must be empty with {operator}")
    if operator in ("Gt", "Lt") and (len(values) != 1 or not _INTEGER_RE.fullmatch(values[0])):
        raise ProfileError(f"{path}.values", f"exactly one integer (as a string) with {operator}")
    out: JsonDict = {"key": key, "operator": operator}
    if values:
        out["values"] = values
    return out


def _preferred(value: object, path: str) -> JsonDict:
    given = _mapping(value, path, allowed=("weight", "preference"))
    weight = read_int(
        given.get("weight"),
        f"{path}.weight",
        minimum=1,
        maximum=100,
        expected="a whole number 1-100",
        error=ProfileError,
    )
    preference = _mapping(
        given.get("preference"), f"{path}.preference", allowed=("matchExpressions",)
    )
    expressions = _list(
        preference.get("matchExpressions"), f"{path}.preference.matchExpressions", _requirement
    )
    if not expressions:
        raise ProfileError(f"{path}.preference.matchExpressions", "at least one is required")
    return {"weight": weight, "preference": {"matchExpressions": expressions}}


def _scheduler_name(value: object, path: str) -> str | None:
    if value is None:
        return None
    name = _string(value, path)
    if not _NAME_RE.fullmatch(name):
        raise ProfileError(
            path,
            f"expected a scheduler name such as headroom (got {name!r}), "
            "or null to leave the pod's scheduler alone",
        )
    return name


def _max_gpus(value: object, path: str) -> int | None:
    if value is None:
        return None
    return read_int(
        value,
        path,
        minimum=1,
        error=ProfileError,
        expected="a whole number of GPUs, at least 1, or null for no limit",
    )


def _sharing(value: object, path: str) -> Sharing:
    given = _mapping(value, path, allowed=("allowed", "env"))
    env = _string(given.get("env", DEFAULT_VISIBLE_DEVICES_ENV), f"{path}.env")
    if not _ENV_NAME_RE.fullmatch(env):
        raise ProfileError(f"{path}.env", f"expected an environment variable name (got {env!r})")
    return Sharing(allowed=_bool(given.get("allowed", True), f"{path}.allowed"), env=env)
