"""10,000 malformed or random bodies through the app: never a 5xx, never a crash; a 200 is
always an AdmissionReview carrying the request's uid, anything else a JSON error."""

from __future__ import annotations

from collections import Counter

from flask.testing import FlaskClient

from tests.webhook.fuzz import bodies, uid_of


def test_ten_thousand_bodies_get_an_answer_and_never_a_5xx(client: FlaskClient) -> None:
    statuses: Counter[int] = Counter()
    for body in bodies(10_000):
        response = client.post("/mutate", data=body, content_type="application/json")
        statuses[response.status_code] += 1
        assert response.status_code < 500, body
        answer = response.get_json()
        if response.status_code == 200:
            assert answer["apiVersion"] == "admission.k8s.io/v1", body
            assert answer["response"]["uid"] == uid_of(body), body
            assert isinstance(answer["response"]["allowed"], bool)
        else:
            assert response.status_code == 400 and answer["error"], body
    # The generator must reach both sides, or the test proves little.
    assert statuses[200] > 2_000 and statuses[400] > 2_000, statuses
