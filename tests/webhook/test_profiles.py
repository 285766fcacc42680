"""Profiles: the shipped file parses, omitted fields take DESIGN.md's defaults, and every bad key
is refused with its path and the expected form."""

from __future__ import annotations

import textwrap

import pytest

from headroom import names
from tests.webhook.helpers import shipped_profiles
from webhook.profiles import ProfileError, parse_profiles


def profiles_text(body: str, *, name: str = "default") -> str:
    indented = textwrap.indent(textwrap.dedent(body), "    ")
    extra = "" if name == "default" else "  default: {}\n"
    return f"profiles:\n{extra}  {name}:\n{indented}"


def test_the_shipped_profiles_parse() -> None:
    profiles = shipped_profiles()
    assert set(profiles.profiles) == {"default", "gpu-large", "shared-small"}
    large = profiles.profiles["gpu-large"]
    assert large.sharing.allowed is False
    assert large.preferred_node_affinity[0]["weight"] == 50
    assert profiles.profiles["shared-small"].max_gpus == 1


def test_an_empty_profile_takes_the_design_defaults() -> None:
    profile = parse_profiles("profiles:\n  default: {}\n").profiles["default"]
    assert profile.tolerations == (
        {"key": names.GPU_TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"},
    )
    assert profile.required_node_affinity == (
        {"key": names.GPU_PRESENT_NODE_LABEL, "operator": "In", "values": ["true"]},
    )
    assert profile.preferred_node_affinity == ()
    assert profile.gpu_memory_affinity and profile.readiness_gate
    assert profile.scheduler_name == names.SCHEDULER_NAME
    assert profile.max_gpus is None
    assert profile.sharing.allowed and profile.sharing.env == "NVIDIA_VISIBLE_DEVICES"


def test_explicit_empty_lists_and_null_scheduler_turn_injections_off() -> None:
    text = profiles_text("""\
        tolerations: []
        requiredNodeAffinity: []
        schedulerName: null
        readinessGate: false
    """)
    profile = parse_profiles(text).profiles["default"]
    assert profile.tolerations == () and profile.required_node_affinity == ()
    assert profile.scheduler_name is None and profile.readiness_gate is False


def test_digests_follow_the_content() -> None:
    one = parse_profiles("profiles:\n  default: {maxGpus: 2}\n")
    same = parse_profiles("profiles:\n  default:\n    maxGpus: 2\n")
    other = parse_profiles("profiles:\n  default: {maxGpus: 3}\n")
    assert one.profiles["default"].digest == same.profiles["default"].digest
    assert one.profiles["default"].digest != other.profiles["default"].digest
    assert len(one.profiles["default"].digest) == 8


BAD = [
    (
        "tolerations:\n  - {key: nvidia.com/gpu, operator: Exists, effect: Sometimes}\n",
        "profiles.gpu-large.tolerations[0].effect: expected one of NoSchedule, PreferNoSchedule, "
        "NoExecute (got 'Sometimes')",
    ),
    (
        "tolerations:\n  - {key: a, operator: Maybe}\n",
        "profiles.gpu-large.tolerations[0].operator: expected one of Equal, Exists",
    ),
    (
        "tolerations:\n  - {operator: Equal, value: x}\n",
        "profiles.gpu-large.tolerations[0].key: required with operator Equal",
    ),
    (
        "tolerations:\n  - {key: a, operator: Exists, value: x}\n",
        "profiles.gpu-large.tolerations[0].value: must be empty with operator Exists",
    ),
    (
        "tolerations:\n  - {key: a, operator: Exists, effect: NoSchedule, tolerationSeconds: 5}\n",
        "profiles.gpu-large.tolerations[0].tolerationSeconds: only allowed with effect NoExecute",
    ),
    (
        "tolerations:\n  - {key: a, colour: blue}\n",
        "profiles.gpu-large.tolerations[0].colour: unknown key",
    ),
    ("tolerations: {key: a}\n", "profiles.gpu-large.tolerations: expected a list"),
    (
        "requiredNodeAffinity:\n  - {key: a, operator: In, values: [true]}\n",
        "profiles.gpu-large.requiredNodeAffinity[0].values[0]: expected a string (got a boolean; "
        'quote it: "true")',
    ),
    (
        "requiredNodeAffinity:\n  - {key: a, operator: In}\n",
        "profiles.gpu-large.requiredNodeAffinity[0].values: at least one value is required with In",
    ),
    (
        "requiredNodeAffinity:\n  - {key: a, operator: Exists, values: [x]}\n",
        "profiles.gpu-large.requiredNodeAffinity[0].values: must be empty with Exists",
    ),
    (
        "requiredNodeAffinity:\n  - {key: a, operator: Gt, values: ['1.5']}\n",
        "profiles.gpu-large.requiredNodeAffinity[0].values: exactly one integer",
    ),
    (
        "requiredNodeAffinity:\n  - {operator: Exists}\n",
        "profiles.gpu-large.requiredNodeAffinity[0].key: required",
    ),
    (
        "requiredNodeAffinity:\n  - {key: 'bad key!', operator: Exists}\n",
        "profiles.gpu-large.requiredNodeAffinity[0].key: expected a label key",
    ),
    (
        "preferredNodeAffinity:\n  - {weight: 0, preference: {matchExpressions: []}}\n",
        "profiles.gpu-large.preferredNodeAffinity[0].weight: expected a whole number 1-100",
    ),
    (
        "preferredNodeAffinity:\n  - {weight: 5, preference: {matchExpressions: []}}\n",
        "profiles.gpu-large.preferredNodeAffinity[0].preference.matchExpressions: at least one",
    ),
    (
        "gpuMemoryAffinity: yes please\n",
        "profiles.gpu-large.gpuMemoryAffinity: expected true or false",
    ),
    ("readinessGate: 1\n", "profiles.gpu-large.readinessGate: expected true or false"),
    ("schedulerName: Not_A_Name\n", "profiles.gpu-large.schedulerName: expected a scheduler"),
    ("maxGpus: 0\n", "profiles.gpu-large.maxGpus: expected a whole number of GPUs, at least 1"),
    ("maxGpus: '2'\n", "profiles.gpu-large.maxGpus: expected a whole number"),
    ("sharing: {allowed: maybe}\n", "profiles.gpu-large.sharing.allowed: expected true or false"),
    ("sharing: {env: 1BAD}\n", "profiles.gpu-large.sharing.env: expected an environment"),
    (
        "tolerance: []\n",
        "profiles.gpu-large.tolerance: unknown key (expected one of "
        "tolerations, requiredNodeAffinity",
    ),
]


@pytest.mark.parametrize(
    ("body", "message"),
    BAD,
    ids=[
        m.split(":")[0].removeprefix("profiles.gpu-large.") + f"-{i}"
        for i, (_, m) in enumerate(BAD)
    ],
)
def test_a_bad_profile_is_refused_naming_the_key(body: str, message: str) -> None:
    with pytest.raises(ProfileError) as info:
        parse_profiles(profiles_text(body, name="gpu-large"))
    assert str(info.value).startswith(message), str(info.value)
    assert info.value.path == message.split(":", maxsplit=1)[0]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("profiles: {gpu: {}}\n", "profiles.default: required"),
        ("{}\n", "profiles: required"),
        ("- a\n", "(file): expected a mapping (got a list)"),
        ("profiles: {default: {}}\nextra: 1\n", "extra: unknown key"),
        ("kind: Something\nprofiles: {default: {}}\n", "kind: expected 'WebhookProfiles'"),
        ("profiles: {default: {}, Bad_Name: {}}\n", "profiles.Bad_Name: a profile name is"),
        ("profiles: {default: [1]}\n", "profiles.default: expected a mapping (got a list)"),
        ("profiles: [\n", "(file): not valid YAML"),
    ],
)
def test_a_bad_file_is_refused_naming_the_key(text: str, message: str) -> None:
    with pytest.raises(ProfileError) as info:
        parse_profiles(text)
    assert str(info.value).startswith(message), str(info.value)
