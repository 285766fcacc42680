"""The one FieldError and the one typed reader, and the parsers that raise it."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from extender.scaler.spec import SpecError, parse_spec
from extender.verbs import PolicyError
from extender.wire import WireError, parse_args
from headroom.clock import format_time, parse_time
from headroom.demand import DemandError
from headroom.fields import (
    FieldError,
    FieldReader,
    child,
    kind_phrase,
    read_bool,
    read_int,
    read_list,
    read_mapping,
    read_number,
    read_optional_int,
    read_optional_list,
    read_optional_mapping,
    read_str,
)
from headroom.quantity import QuantityError, parse_bytes
from headroom.report import GpuState, NodeReport, ReportError, report_from_status, report_to_status
from webhook.mutate import MutationError
from webhook.profiles import ProfileError
from webhook.review import BadReview


def test_field_error_names_the_field() -> None:
    error = FieldError("spec.minReplicas", "expected an integer >= 0 (got -1)")
    assert (error.field, error.message) == ("spec.minReplicas", "expected an integer >= 0 (got -1)")
    assert str(error) == "spec.minReplicas: expected an integer >= 0 (got -1)"
    assert isinstance(error, ValueError)
    assert str(FieldError("x", "m", text="something else")) == "something else"


@pytest.mark.parametrize(
    "cls",
    [
        ReportError,
        DemandError,
        SpecError,
        WireError,
        PolicyError,
        ProfileError,
        MutationError,
        BadReview,
    ],
)
def test_every_parser_error_is_a_field_error(cls: type[FieldError]) -> None:
    error = cls("a.b", "expected a string")
    assert isinstance(error, FieldError)
    assert (error.field, str(error)) == ("a.b", "a.b: expected a string")


def test_quantity_error_keeps_its_form() -> None:
    with pytest.raises(QuantityError) as info:
        parse_bytes("lots", field="gpu-memory")
    assert isinstance(info.value, FieldError)
    assert info.value.field == "gpu-memory"
    assert str(info.value) == f"gpu-memory: {info.value.message}"
    assert info.value.message.startswith("not a quantity (got 'lots'")


def test_profile_error_keeps_path() -> None:
    assert ProfileError("profiles.x.maxGpus", "m").path == "profiles.x.maxGpus"


@pytest.mark.parametrize(
    ("read", "good"),
    [
        (read_mapping, {"a": 1}),
        (read_list, [1]),
        (read_str, "x"),
        (read_int, 3),
        (read_number, 1.5),
        (read_bool, False),
    ],
)
def test_readers_return_good_values(read: Any, good: object) -> None:
    assert read(good, "f") == good


@pytest.mark.parametrize(
    ("read", "bad", "message"),
    [
        (read_mapping, [], "f: expected an object (got list)"),
        (read_list, {}, "f: expected a list (got dict)"),
        (read_str, 1, "f: expected a string (got 1)"),
        (read_int, True, "f: expected an integer (got True)"),
        (read_int, 1.0, "f: expected an integer (got 1.0)"),
        (read_number, "1", "f: expected a number (got '1')"),
        (read_number, False, "f: expected a number (got False)"),
        (read_bool, "true", "f: expected true or false (got 'true')"),
    ],
)
def test_readers_name_field_and_form(read: Any, bad: object, message: str) -> None:
    with pytest.raises(FieldError) as info:
        read(bad, "f")
    assert (info.value.field, str(info.value)) == ("f", message)


def test_reader_options() -> None:
    with pytest.raises(FieldError, match=r"^f: expected an integer >= 2 \(got 1\)$"):
        read_int(1, "f", minimum=2)
    with pytest.raises(FieldError, match=r"^f: expected 1-3 \(got 4\)$"):
        read_int(4, "f", minimum=1, maximum=3, expected="1-3")
    with pytest.raises(FieldError, match=r"^f: expected a number > 0 \(got inf\)$"):
        read_number(float("inf"), "f", above=0)
    with pytest.raises(FieldError, match=r"^f: expected a non-empty string$"):
        read_str("", "f", nonempty=True, show=None)
    with pytest.raises(FieldError, match=r"^f: expected a mapping \(got a list\)$"):
        read_mapping([], "f", expected="a mapping", show=kind_phrase)
    with pytest.raises(SpecError):
        read_str(None, "f", error=SpecError)
    assert read_optional_mapping(None, "f") == {}
    assert read_optional_list(None, "f") == []
    assert read_optional_int(None, "f") is None
    assert (child("a", "b"), child("a", 0)) == ("a.b", "a[0]")


def test_field_reader() -> None:
    reader = FieldReader({"n": 1, "s": None}, "top", error=ReportError)
    assert reader.integer("n", minimum=0) == 1
    assert reader.string("missing", default="d") == "d"
    assert reader.optional_number("s") is None
    with pytest.raises(ReportError, match=r"^top\.missing: required$"):
        reader.boolean("missing")
    with pytest.raises(ReportError, match=r"^top\.s: expected a string \(got None\)$"):
        reader.string("s")


def test_clock_round_trip_and_errors() -> None:
    assert format_time(0) == "1970-01-01T00:00:00Z"
    assert parse_time("1970-01-01T00:01:00Z", field="t") == 60
    with pytest.raises(FieldError, match=r"^t: expected an RFC 3339 time"):
        parse_time(5, field="t")
    with pytest.raises(ReportError, match=r"^t: the time must carry a zone"):
        parse_time("2024-01-01T00:00:00", field="t", error=ReportError)


# -- wrong types at every depth: each parser names exactly the field it was given ----------------

WRONG = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(max_size=3),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=2),
)


def _status() -> dict[str, Any]:
    report = NodeReport(
        node_name="n",
        reported_at_unix_seconds=1_700_000_000.0,
        gpus=(GpuState(index=0, uuid="GPU-0", model="m", total_bytes=10, used_bytes=1),),
    )
    status = report_to_status(report)
    status["gpus"][0]["pods"] = [{"uid": "u", "usedBytes": 1}]
    return status


REPORT_PATHS: list[tuple[list[Any], type]] = [
    (["schemaVersion"], int),
    (["reportTime"], str),
    (["healthy"], bool),
    (["reason"], str),
    (["gpus"], list),
    (["gpus", 0], dict),
    (["gpus", 0, "index"], int),
    (["gpus", 0, "uuid"], str),
    (["gpus", 0, "totalBytes"], int),
    (["gpus", 0, "pods"], list),
    (["gpus", 0, "pods", 0], dict),
    (["gpus", 0, "pods", 0, "uid"], str),
    (["gpus", 0, "pods", 0, "usedBytes"], int),
    (["gpus", 0, "powerWatts"], float),
]


def _dotted(where: str, path: list[Any]) -> str:
    for key in path:
        where = child(where, key)
    return where


def _is(kind: type, value: object) -> bool:
    if kind is float:
        return value is None or (not isinstance(value, bool) and isinstance(value, int | float))
    if kind is int:
        return not isinstance(value, bool) and isinstance(value, int)
    return isinstance(value, kind)


@pytest.mark.parametrize(("path", "kind"), REPORT_PATHS)
@given(value=WRONG)
def test_report_names_wrong_types_at_every_depth(
    path: list[Any], kind: type, value: object
) -> None:
    if _is(kind, value):
        return
    status = _status()
    holder = status
    for key in path[:-1]:
        holder = holder[key]
    holder[path[-1]] = value
    with pytest.raises(ReportError) as info:
        report_from_status("n", status)
    assert info.value.field == _dotted("status", path)


SPEC_PATHS: list[tuple[list[str], type]] = [
    (["minReplicas"], int),
    (["maxReplicas"], int),
    (["deploymentName"], str),
    (["behavior"], dict),
    (["feasibility"], dict),
    (["feasibility", "allowPending"], int),
    (["behavior", "scaleUp"], dict),
]


@pytest.mark.parametrize(("path", "kind"), SPEC_PATHS)
@given(value=WRONG)
def test_spec_names_wrong_types_at_every_depth(path: list[str], kind: type, value: object) -> None:
    if value is None or _is(kind, value):
        return
    spec: dict[str, Any] = {
        "deploymentName": "d",
        "targetValue": 1,
        "maxReplicas": 3,
        "behavior": {"scaleUp": {}},
        "feasibility": {},
    }
    holder = spec
    for key in path[:-1]:
        holder = holder[key]
    holder[path[-1]] = value
    with pytest.raises(SpecError) as info:
        parse_spec({"spec": spec})
    assert info.value.field == _dotted("spec", path)


@given(value=WRONG)
def test_extender_args_name_the_node_field(value: object) -> None:
    if isinstance(value, dict):
        return
    with pytest.raises(WireError) as info:
        parse_args({"Pod": {"metadata": {}}, "Nodes": {"items": [value]}})
    assert info.value.field == "Nodes.items[0]"
