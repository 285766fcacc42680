"""Tests for `certs.rotation`: the plan over tables of times, and a simulated fleet of replicas
over several CA lifetimes in which the API server never distrusts a pair a webhook serves."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from typing import TypeVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from certs.durations import FlagError
from certs.rotation import (
    NEW,
    Action,
    Cert,
    DropCAs,
    IssueServing,
    NewCA,
    Policy,
    PublishBundle,
    Published,
    SaveSecret,
    Serving,
    State,
    WriteFiles,
    check_policy,
    plan,
)

T = TypeVar("T")
T0 = datetime(2030, 1, 1, tzinfo=UTC)
DAY = timedelta(days=1)
POLICY = Policy(
    ca_validity=365 * DAY, serving_validity=30 * DAY, renew_before=1 / 3, grace=timedelta(hours=1)
)
CA_A = Cert("a", issued_at=T0, not_after=T0 + 365 * DAY)
CA_B = Cert("b", issued_at=T0 + 250 * DAY, not_after=T0 + 615 * DAY)


def serving(issuer: str, issued_at: datetime, *, names_match: bool = True) -> Serving:
    cert = Cert(f"s-{issuer}-{issued_at:%j%H%M}", issued_at, issued_at + 30 * DAY)
    return Serving(cert, issuer=issuer, names_match=names_match)


def state(
    bundle: tuple[Cert, ...] = (CA_A,),
    signing: str | None = "a",
    served: Serving | None = None,
    *,
    published: tuple[str, ...] | None = ("a",),
    changed_at: datetime | None = T0,
    files_current: bool = True,
) -> State:
    if served is None and signing is not None:
        served = serving(signing, T0)
    return State(
        bundle=bundle,
        signing=signing,
        serving=served,
        published=Published(found=True, bundle=published, changed_at=changed_at),
        files_current=files_current,
    )


def kinds(actions: list[Action]) -> list[str]:
    return [type(action).__name__ for action in actions]


def test_a_fresh_install_makes_a_ca_and_a_pair_and_publishes_them() -> None:
    empty = State((), None, None, Published(found=True, bundle=()), files_current=False)
    actions = plan(empty, T0, POLICY)
    assert kinds(actions) == [
        "NewCA",
        "IssueServing",
        "SaveSecret",
        "WriteFiles",
        "PublishBundle",
    ]
    assert actions[0] == NewCA("the Secret holds no CA")


def test_a_valid_state_needs_nothing() -> None:
    assert plan(state(), T0 + 5 * DAY, POLICY) == []


def test_another_replicas_newer_pair_is_only_written_to_the_files() -> None:
    newer = state(served=serving("a", T0 + 10 * DAY), files_current=False)
    assert plan(newer, T0 + 11 * DAY, POLICY) == [WriteFiles()]


@pytest.mark.parametrize(
    ("days", "renewed"),
    [(19, False), (19.9, False), (20.1, True), (29.9, True), (30, True), (45, True)],
)
def test_the_serving_pair_is_renewed_in_its_last_third(days: float, renewed: bool) -> None:
    actions = plan(state(), T0 + days * DAY, POLICY)
    assert (kinds(actions) == ["IssueServing", "SaveSecret", "WriteFiles"]) is renewed, actions


def test_an_expiring_ca_is_published_beside_the_old_one_before_anything_is_signed_by_it() -> None:
    at = T0 + 250 * DAY  # 115 days left, under a third of 365
    actions = plan(state(served=serving("a", T0 + 240 * DAY)), at, POLICY)
    assert kinds(actions) == ["NewCA", "SaveSecret", "WriteFiles", "PublishBundle"]
    assert actions[0] == NewCA("the CA expires in 115d")


def rotating(at_switch: datetime | None = None) -> State:
    """The new CA b is in the bundle and has been published at T0 + 250 days; the pair is a's,
    or b's from `at_switch`."""
    served = serving("b", at_switch) if at_switch else serving("a", T0 + 240 * DAY)
    return state((CA_A, CA_B), "b", served, published=("a", "b"), changed_at=T0 + 250 * DAY)


@pytest.mark.parametrize(
    ("after", "expected"),
    [
        (timedelta(0), []),
        (timedelta(minutes=59), []),
        (timedelta(hours=1), ["IssueServing", "SaveSecret", "WriteFiles"]),
        (timedelta(days=2), ["IssueServing", "SaveSecret", "WriteFiles"]),
    ],
)
def test_the_pair_switches_to_the_new_ca_once_it_is_trusted_for_the_grace(
    after: timedelta, expected: list[str]
) -> None:
    actions = plan(rotating(), T0 + 250 * DAY + after, POLICY)
    assert kinds(actions) == expected
    if actions:
        assert actions[0] == IssueServing("switching to the new CA")


def test_the_switch_waits_while_the_configuration_trusts_only_the_old_ca() -> None:
    # The caBundle was reset (an install re-applied): publish first, then wait again.
    reset = replace(rotating(), published=Published(bundle=("a",), changed_at=T0 + 251 * DAY))
    assert kinds(plan(reset, T0 + 252 * DAY, POLICY)) == ["PublishBundle"]


@pytest.mark.parametrize(
    ("after", "dropped"),
    [(timedelta(minutes=30), False), (timedelta(hours=1), True), (timedelta(days=9), True)],
)
def test_the_old_ca_leaves_the_bundle_a_grace_after_the_switch(
    after: timedelta, dropped: bool
) -> None:
    switched_at = T0 + 251 * DAY
    actions = plan(rotating(at_switch=switched_at), switched_at + after, POLICY)
    if dropped:
        assert actions == [
            DropCAs(("a",), "the serving pair has come from the newest CA for 1h"),
            SaveSecret(),
            WriteFiles(),
            PublishBundle("the webhook configuration trusts other CAs than the Secret"),
        ]
    else:
        assert actions == []


def test_an_expired_ca_leaves_the_bundle_at_once() -> None:
    old = Cert("old", issued_at=T0 - 400 * DAY, not_after=T0 - DAY)
    current = state((old, CA_A), "a", published=("old", "a"))
    assert kinds(plan(current, T0, POLICY)) == [
        "DropCAs",
        "SaveSecret",
        "WriteFiles",
        "PublishBundle",
    ]


@pytest.mark.parametrize(
    ("served", "reason"),
    [
        (None, "the Secret holds no serving pair"),
        (
            serving("a", T0, names_match=False),
            "the serving certificate does not name every DNS name and IP address",
        ),
        (serving("z", T0), "no CA the Secret trusts signed the serving certificate"),
    ],
)
def test_a_broken_serving_pair_is_reissued_at_once(served: Serving | None, reason: str) -> None:
    broken = State((CA_A,), "a", served, Published(bundle=("a",), changed_at=T0), True)
    actions = plan(broken, T0 + DAY, POLICY)
    assert actions == [IssueServing(reason), SaveSecret(), WriteFiles()]


def test_a_corrupt_ca_makes_a_new_one_and_a_pair_from_it_at_once() -> None:
    # ca.crt did not parse: nothing is trusted, so there is nothing to wait for.
    corrupt = State((), None, serving("a", T0), Published(bundle=("a",), changed_at=T0), True)
    assert kinds(plan(corrupt, T0 + DAY, POLICY)) == [
        "NewCA",
        "IssueServing",
        "SaveSecret",
        "WriteFiles",
        "PublishBundle",
    ]


def test_a_generated_secret_without_a_ca_key_is_adopted_by_a_rotation() -> None:
    manual = state(signing=None, served=serving("a", T0), changed_at=None)
    actions = plan(manual, T0 + DAY, POLICY)
    assert kinds(actions) == ["NewCA", "SaveSecret", "WriteFiles", "PublishBundle"]
    assert actions[0] == NewCA("the Secret holds no key for the CAs it trusts")


def test_a_pair_that_would_expire_before_the_switch_is_reissued_from_the_new_ca() -> None:
    dying = serving("a", T0 + 250 * DAY - 30 * DAY + timedelta(minutes=30))
    current = replace(rotating(), serving=dying)
    actions = plan(current, T0 + 250 * DAY, POLICY)
    assert kinds(actions) == ["IssueServing", "SaveSecret", "WriteFiles"]
    assert "before the new CA is trusted long enough" in actions[0].reason  # type: ignore[union-attr]


def test_a_missing_configuration_or_stamp_is_published() -> None:
    missing = replace(state(), published=Published(found=False))
    assert plan(missing, T0, POLICY) == [PublishBundle("the webhook configuration is missing")]
    unstamped = state(changed_at=None)
    assert kinds(plan(unstamped, T0, POLICY)) == ["PublishBundle"]


def test_check_policy_names_the_flags() -> None:
    minute = timedelta(minutes=1)
    check_policy(POLICY, resync=minute)
    with pytest.raises(FlagError, match=r"--rotation-grace \(1h\) must be at least twice --resync"):
        check_policy(POLICY, resync=31 * minute)
    short = replace(POLICY, serving_validity=timedelta(hours=5))
    with pytest.raises(FlagError, match=r"--renew-before x --serving-validity \(1h40m\)"):
        check_policy(short, resync=minute)
    short_ca = replace(POLICY, ca_validity=60 * DAY)
    with pytest.raises(FlagError, match=r"--renew-before x --ca-validity \(20d\)"):
        check_policy(short_ca, resync=minute)


# -- a simulated fleet ---------------------------------------------------------------------------


@dataclass
class Fleet:
    """Replicas that each run the plan every `resync` on a shared Secret; an API server that
    loads a caBundle within `propagation`, webhooks that load new files within `reload`."""

    policy: Policy
    resync: int
    propagation: int
    reload: int
    offsets: list[int]
    bundle: tuple[Cert, ...] = ()
    signing: str | None = None
    serving: Serving | None = None
    published: list[tuple[int, tuple[str, ...]]] = field(default_factory=list)
    stamp: datetime | None = None
    files: list[list[tuple[int, Serving]]] = field(default_factory=list)
    issued: list[tuple[int, str]] = field(default_factory=list)
    names: itertools.count[int] = field(default_factory=itertools.count)

    def tick(self, replica: int, second: int) -> None:
        now = T0 + timedelta(seconds=second)
        written = self.files[replica]
        current = bool(written) and written[-1][1] == self.serving
        published = Published(
            bundle=self.published[-1][1] if self.published else (), changed_at=self.stamp
        )
        state = State(self.bundle, self.signing, self.serving, published, current)
        for action in plan(state, now, self.policy):
            self.execute(action, replica, second)

    def execute(self, action: Action, replica: int, second: int) -> None:
        now = T0 + timedelta(seconds=second)
        if isinstance(action, NewCA):
            ca = Cert(f"ca{next(self.names)}", now, now + self.policy.ca_validity)
            self.bundle, self.signing = (*self.bundle, ca), ca.fingerprint
        elif isinstance(action, IssueServing):
            signer = next(ca for ca in self.bundle if ca.fingerprint == self.signing)
            not_after = min(now + self.policy.serving_validity, signer.not_after)
            cert = Cert(f"s{next(self.names)}", now, not_after)
            self.serving = Serving(cert, issuer=signer.fingerprint, names_match=True)
            self.issued.append((second, action.reason))
        elif isinstance(action, DropCAs):
            self.bundle = tuple(c for c in self.bundle if c.fingerprint not in action.fingerprints)
        elif isinstance(action, WriteFiles):
            assert self.serving is not None
            self.files[replica].append((second, self.serving))
        elif isinstance(action, PublishBundle):
            self.published.append((second, tuple(c.fingerprint for c in self.bundle)))
            self.stamp = now

    def check(self, second: int, cas: dict[str, Cert]) -> None:
        """Every pair any webhook may serve now verifies against every bundle any API server may
        hold now: served and trusted are each the latest before the delay, or newer."""
        now = T0 + timedelta(seconds=second)
        trusted = _window(self.published, second, self.propagation)
        for written in self.files:
            for served in _window(written, second, self.reload):
                assert served.cert.not_after > now, f"{second}s: served {served} expired"
                assert served.issuer is not None and cas[served.issuer].not_after > now
                for bundle in trusted:
                    assert served.issuer in bundle, f"{second}s: {served} vs {bundle}"


def _window(history: list[tuple[int, T]], second: int, delay: int) -> list[T]:
    settled = [value for at, value in history if at <= second - delay]
    recent = [value for at, value in history if second - delay < at <= second]
    return settled[-1:] + recent


@st.composite
def fleets(draw: st.DrawFn) -> Fleet:
    resync = draw(st.integers(1, 5))
    grace = draw(st.integers(2 * resync, 5 * resync))
    renew = draw(st.sampled_from([Fraction(1, 4), Fraction(1, 3), Fraction(1, 2), Fraction(2, 3)]))
    serving_s = draw(st.integers(int(2 * grace / renew) + 1, int(4 * grace / renew) + 2))
    shortest_ca = int((serving_s + 2 * grace) / renew) + 1
    ca_s = draw(st.integers(shortest_ca, 2 * shortest_ca))
    policy = Policy(
        ca_validity=timedelta(seconds=ca_s),
        serving_validity=timedelta(seconds=serving_s),
        renew_before=float(renew),
        grace=timedelta(seconds=grace),
    )
    check_policy(policy, resync=timedelta(seconds=resync))
    replicas = draw(st.integers(1, 3))
    offsets = [draw(st.integers(0, resync - 1)) for _ in range(replicas)]
    return Fleet(
        policy=policy,
        resync=resync,
        propagation=draw(st.integers(0, resync - 1)),
        reload=draw(st.integers(0, resync - 1)),
        offsets=offsets,
        files=[[] for _ in offsets],
    )


@settings(max_examples=40)
@given(fleets())
def test_a_fleet_rotates_through_several_cas_without_a_moment_of_distrust(fleet: Fleet) -> None:
    ca_seconds = int(fleet.policy.ca_validity.total_seconds())
    horizon = 3 * ca_seconds
    cas: dict[str, Cert] = {}
    installed = None
    for second in range(horizon):
        for replica, offset in enumerate(fleet.offsets):
            if second >= offset and (second - offset) % fleet.resync == 0:
                fleet.tick(replica, second)
        cas.update({ca.fingerprint: ca for ca in fleet.bundle})
        if installed is None and fleet.published:
            installed = second + fleet.resync + max(fleet.propagation, fleet.reload)
        if installed is not None and second >= installed:
            fleet.check(second, cas)
    assert len(cas) >= 3, "at least two CA rotations in three CA lifetimes"
    # No churn: every reissue but the switches comes a renewal period after the one before.
    period = (1 - fleet.policy.renew_before) * fleet.policy.serving_validity.total_seconds()
    quick = [
        reason
        for (before, _), (at, reason) in itertools.pairwise(fleet.issued)
        if at - before < period - fleet.resync
    ]
    assert all(reason == "switching to the new CA" for reason in quick), quick
    assert NEW not in cas
