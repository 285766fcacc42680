"""The verbs' JSON on the wire: a request's body decoded and an answer encoded, with orjson.

One decoder and one encoder for every route of the extender, and the same two functions are what
bench/extender.py's pass-through app calls, so that the ratio it prints measures the accounting
alone. orjson, not the standard library: at 5,000 nodes a prioritize answer is 5,000 objects,
which `json.dumps` (sorted, as `jsonify` calls it) writes over ten times slower: 2.4 ms against
0.2 ms, measured beside bench/extender.py.

What the scheduler sends is UTF-8 JSON (RFC 8259 between systems; Go writes nothing else).
Beyond that, orjson refuses a little the standard library took: NaN and Infinity, lone UTF-16
surrogates, and UTF-16 or UTF-32 bodies; such a body is answered 400 like any body that is not
JSON. Answers keep the keys sorted, as Flask's `jsonify` wrote them.
"""

from __future__ import annotations

import json

from flask import Response, request
from orjson import OPT_SORT_KEYS, JSONDecodeError, JSONEncodeError, dumps, loads

from extender.wire import WireError

JSON_LIBRARY = "orjson"  # printed by the benchmark beside its version (bench/runinfo.py)
NOT_JSON = "expected JSON (Content-Type application/json)"


def decode(data: bytes) -> object:
    """`data` as JSON; WireError naming `body` when it is not."""
    try:
        return loads(data)
    except JSONDecodeError as exc:
        # orjson stops at 1024 levels of nesting (where the standard library's recursed too deep)
        if "depth" in str(exc) or "recursion" in str(exc):
            raise WireError("body", "JSON nested too deeply") from exc
        raise WireError("body", NOT_JSON) from exc


def request_json() -> object:
    """The current request's body as JSON. WireError naming `body` when it is not JSON or not
    sent as JSON; a body over the app's MAX_CONTENT_LENGTH is werkzeug's 413, as before."""
    if not request.is_json:
        raise WireError("body", NOT_JSON)
    return decode(request.get_data(cache=False))


def encode(value: object) -> bytes:
    """`value` as JSON, keys sorted. orjson writes 254 levels of nesting at most; a value nested
    deeper (only a Node object echoed from the request could be) is written by the standard
    library, as before."""
    try:
        return dumps(value, option=OPT_SORT_KEYS)
    except JSONEncodeError:
        return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def answer(value: object, status: int = 200) -> Response:
    """`value` as a JSON response."""
    return Response(encode(value), status=status, mimetype="application/json")
