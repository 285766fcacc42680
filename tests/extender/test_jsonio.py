"""The verbs' JSON: what a body that is not JSON is told, answers as Flask's `jsonify` wrote them
(same values, keys sorted), and a body over the size limit still refused with 413."""

from __future__ import annotations

import json

import pytest
from flask import Flask, Response

from extender.jsonio import answer, decode, encode, request_json
from extender.wire import WireError


def test_a_json_body_decodes_to_its_value() -> None:
    body = {"Pod": {"metadata": {"name": "p", "uid": "ü"}}, "NodeNames": ["a", "b"], "n": 2**63}
    assert decode(json.dumps(body).encode()) == body


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"{not json", "body: expected JSON"),
        (b'{"a": NaN}', "body: expected JSON"),  # Go never writes one
        (b'"\xff\xfe"', "body: expected JSON"),  # not UTF-8
        (b"[" * 2000 + b"]" * 2000, "body: JSON nested too deeply"),
        (b'{"a": ' * 2000 + b"1" + b"}" * 2000, "body: JSON nested too deeply"),
    ],
)
def test_what_is_not_json_is_a_wire_error_naming_the_body(data: bytes, words: str) -> None:
    with pytest.raises(WireError) as caught:
        decode(data)
    assert words in str(caught.value)


def test_answers_are_the_values_jsonify_wrote_with_keys_sorted() -> None:
    value = {"NodeNames": ["n-2", "n-1"], "FailedNodes": {"z": "ü 20Gi", "a": "x"}, "Error": ""}
    written = encode(value)
    assert json.loads(written) == value
    assert (
        written.index(b'"Error"') < written.index(b'"FailedNodes"') < written.index(b'"NodeNames"')
    )
    assert written.index(b'"a"') < written.index(b'"z"')


def test_a_value_nested_deeper_than_orjson_writes_is_still_written() -> None:
    deep: object = "bottom"
    for _ in range(300):
        deep = {"in": deep}
    assert json.loads(encode({"Nodes": {"items": [deep]}})) == {"Nodes": {"items": [deep]}}


def echo_app(max_bytes: int) -> Flask:
    app = Flask("echo")
    app.config["MAX_CONTENT_LENGTH"] = max_bytes

    @app.post("/")
    def echo() -> Response:
        try:
            return answer({"got": request_json()})
        except WireError as exc:
            return answer({"error": str(exc)}, 400)

    return app


def test_the_request_must_say_it_is_json_and_too_big_a_body_is_413() -> None:
    client = echo_app(100).test_client()
    got = client.post("/", data=b'{"a": 1}', content_type="application/json")
    assert (got.status_code, got.mimetype, got.get_json()) == (
        200,
        "application/json",
        {"got": {"a": 1}},
    )
    plain = client.post("/", data=b'{"a": 1}', content_type="text/plain")
    assert plain.status_code == 400
    assert "body: expected JSON (Content-Type application/json)" in plain.get_json()["error"]
    assert (
        client.post(
            "/", data=b"[" + b"1," * 100 + b"1]", content_type="application/json"
        ).status_code
        == 413
    )
