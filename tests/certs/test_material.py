"""Tests for `certs.material`: the Secret's data parsed, summarised, changed and written back."""

from __future__ import annotations

import base64
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509

from certs import material as mat
from certs import pki
from certs.files import PRIVATE_MODE, PUBLIC_MODE
from certs.generate import generate
from certs.rotation import DropCAs, IssueServing, NewCA, Policy

NAMES = mat.Names("headroom-webhook", "headroom-system", ("127.0.0.1",))
POLICY = Policy(
    ca_validity=timedelta(days=365),
    serving_validity=timedelta(days=30),
    renew_before=1 / 3,
    grace=timedelta(hours=1),
)


@pytest.fixture(scope="module")
def fresh() -> mat.Material:
    return mat.apply(
        mat.Material(), [NewCA("test"), IssueServing("test")], policy=POLICY, names=NAMES
    )


def test_an_empty_secret_holds_nothing_and_nothing_is_wrong() -> None:
    assert mat.parse({}) == mat.Material()
    assert mat.parse({"tls.crt": b"", "tls.key": b""}) == mat.Material()  # a kubernetes.io/tls one
    assert mat.summarize(mat.Material(), NAMES) == ((), None, None)


def test_a_fresh_pair_round_trips_through_the_secret(fresh: mat.Material) -> None:
    data = mat.secret_data(fresh)
    assert sorted(data) == ["ca.crt", "ca.key", "tls.crt", "tls.key"]
    parsed = mat.parse(data)
    assert parsed == fresh
    bundle, signing, serving = mat.summarize(parsed, NAMES)
    assert [ca.fingerprint for ca in bundle] == [signing]
    assert serving is not None and serving.issuer == signing and serving.names_match
    now = datetime.now(UTC)
    assert abs(serving.cert.issued_at - now) < timedelta(minutes=1)  # notBefore + CLOCK_SKEW
    assert timedelta(days=29) < serving.cert.not_after - now <= timedelta(days=30)
    assert timedelta(days=364) < bundle[0].not_after - now <= timedelta(days=365)


def test_the_files_verify_with_openssl_and_the_key_is_private(
    fresh: mat.Material, tmp_path: Path
) -> None:
    files = mat.out_files(fresh)
    assert list(files) == ["ca.crt", "tls.key", "tls.crt"]
    assert files["tls.key"].mode == PRIVATE_MODE and files["tls.crt"].mode == PUBLIC_MODE
    for name, content in files.items():
        (tmp_path / name).write_bytes(content.data)
    result = subprocess.run(
        ["openssl", "verify", "-CAfile", str(tmp_path / "ca.crt"), str(tmp_path / "tls.crt")],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "ca.key" not in files


def test_the_ca_bundle_fingerprints(fresh: mat.Material) -> None:
    encoded = base64.b64encode(mat.bundle_pem(fresh)).decode()
    assert mat.ca_bundle_fingerprints(encoded) == (mat.fingerprint(fresh.bundle[0]),)
    assert mat.ca_bundle_fingerprints("") == ()
    assert mat.ca_bundle_fingerprints("not base64!") is None
    assert mat.ca_bundle_fingerprints(base64.b64encode(b"no PEM").decode()) is None


def test_a_secret_from_headroom_certs_generate_is_adopted(tmp_path: Path) -> None:
    generate(tmp_path, service=NAMES.service, namespace=NAMES.namespace, ip_addresses=["127.0.0.1"])
    data = {name: (tmp_path / name).read_bytes() for name in ("ca.crt", "tls.crt", "tls.key")}
    parsed = mat.parse(data)
    assert parsed.problems == ()
    bundle, signing, serving = mat.summarize(parsed, NAMES)
    assert signing is None  # no ca.key: the plan rotates to a CA of its own
    assert serving is not None and serving.issuer == bundle[0].fingerprint and serving.names_match
    # With its key too, the CA signs.
    data["ca.key"] = (tmp_path / "ca.key").read_bytes()
    assert mat.summarize(mat.parse(data), NAMES)[1] == bundle[0].fingerprint


def test_a_rotation_adds_a_ca_signs_with_it_and_then_drops_the_old(fresh: mat.Material) -> None:
    old = mat.fingerprint(fresh.bundle[0])
    rotated = mat.apply(fresh, [NewCA("expiring")], policy=POLICY, names=NAMES)
    bundle, signing, serving = mat.summarize(rotated, NAMES)
    assert [ca.fingerprint for ca in bundle] == [old, signing]
    assert serving is not None and serving.issuer == old  # the pair is not switched yet
    switched = mat.apply(rotated, [IssueServing("switch")], policy=POLICY, names=NAMES)
    assert mat.summarize(switched, NAMES)[2].issuer == signing  # type: ignore[union-attr]
    dropped = mat.apply(switched, [DropCAs((old,), "done")], policy=POLICY, names=NAMES)
    assert [mat.fingerprint(ca) for ca in dropped.bundle] == [signing]
    # Each CA is named for its Service and the second it was made, as the kubelet names its own.
    names = [ca.subject.rfc4514_string() for ca in rotated.bundle]
    assert all(name.startswith("CN=headroom-webhook-ca@") for name in names), names


def test_no_serving_certificate_outlives_its_ca() -> None:
    short = Policy(
        ca_validity=timedelta(hours=1),
        serving_validity=timedelta(days=30),
        renew_before=1 / 3,
        grace=timedelta(minutes=1),
    )
    made = mat.apply(mat.Material(), [NewCA("t"), IssueServing("t")], policy=short, names=NAMES)
    assert made.serving is not None and made.signing is not None
    ca_end = made.signing.certificate().not_valid_after_utc
    assert made.serving.certificate().not_valid_after_utc <= ca_end


def test_other_names_are_a_mismatch(fresh: mat.Material) -> None:
    moved = mat.Names("headroom-webhook", "other-ns", ("127.0.0.1",))
    assert mat.summarize(fresh, moved)[2].names_match is False  # type: ignore[union-attr]
    more_ips = mat.Names("headroom-webhook", "headroom-system", ("127.0.0.1", "10.0.0.9"))
    assert mat.summarize(fresh, more_ips)[2].names_match is False  # type: ignore[union-attr]


def other_pair() -> tuple[pki.KeyPair, pki.KeyPair]:
    ca = pki.new_ca("other")
    leaf = pki.issue_serving_cert(ca, common_name="x", dns_names=["x"])
    return ca, leaf


def test_corrupt_data_is_left_out_and_named(fresh: mat.Material) -> None:
    data = mat.secret_data(fresh)
    other_ca, other_leaf = other_pair()
    cases = {
        "ca.crt does not parse as PEM certificates": {**data, "ca.crt": b"-----BEGIN garbage"},
        "ca.key does not parse as an unencrypted PEM key": {**data, "ca.key": b"junk"},
        "ca.key is the key of no CA in ca.crt": {**data, "ca.key": other_ca.key_pem},
        "tls.key is not the key of tls.crt": {**data, "tls.key": other_leaf.key_pem},
        "tls.crt and tls.key do not parse as a PEM pair": {**data, "tls.crt": b"junk"},
        "ca.crt holds certificates that are not CAs": {
            **data,
            "ca.crt": data["ca.crt"] + other_leaf.cert_pem,
        },
    }
    for problem, corrupt in cases.items():
        parsed = mat.parse(corrupt)
        # The first problem is the cause (a bundle that does not parse also orphans ca.key).
        assert parsed.problems and parsed.problems[0].startswith(problem), parsed.problems


def test_a_serving_pair_from_an_unknown_ca_has_no_issuer(fresh: mat.Material) -> None:
    _, leaf = other_pair()
    foreign = mat.parse(
        {**mat.secret_data(fresh), "tls.crt": leaf.cert_pem, "tls.key": leaf.key_pem}
    )
    serving = mat.summarize(foreign, NAMES)[2]
    assert serving is not None and serving.issuer is None and not serving.names_match
    assert (
        x509.load_pem_x509_certificate(leaf.cert_pem).not_valid_after_utc == serving.cert.not_after
    )
