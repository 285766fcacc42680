"""The decisions of self-managed certificates: given what is stored and the time, what to change.

`plan(state, now, policy)` is pure: it sees the Secret's certificates and the webhook
configuration's trust as summaries (`State`: fingerprints and times, no keys) and returns the
actions, in the order to execute them. A `NEW` fingerprint stands for a CA the plan decided to
create, so one round can make a CA and issue the serving pair it signs (a fresh install).

The trust bundle (every CA the webhook configuration's caBundle trusts) changes in this order,
so that at no moment does the API server distrust the pair a webhook replica serves:

1. The signing CA (the one whose key the Secret holds) is missing, or has less than
   `renew_before` x `ca_validity` left: a new CA is made and *added* to the bundle, which is
   published to the webhook configuration, stamped with the time it changed.
2. Once the configuration has trusted the new CA for `grace` (the API servers have loaded it),
   the serving pair is reissued by the new CA.
3. Once that pair is `grace` old (every replica has read it and its webhook reloaded it), the
   older CAs leave the bundle. A CA that has expired leaves at once.

A serving pair is reissued at once when it is missing, broken, for other names, signed by no CA
in the bundle, or expired; and when less than `renew_before` x `serving_validity` remains, except
while a new CA is not yet trusted for `grace` (then it waits for step 2, unless it would expire
first). `check_policy` refuses flag values with which these waits could not fit.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from certs.durations import FlagError, format_duration

NEW = "new"  # the fingerprint of a CA or serving certificate this plan creates


@dataclass(frozen=True)
class Cert:
    fingerprint: str
    issued_at: datetime  # notBefore plus the issuer's backdating (pki.CLOCK_SKEW)
    not_after: datetime


@dataclass(frozen=True)
class Serving:
    cert: Cert
    issuer: str | None  # the fingerprint of the bundle CA that signed it; None: none did
    names_match: bool  # it names every DNS name and IP address the webhook is reached by


@dataclass(frozen=True)
class Published:
    """What the webhook configuration trusts."""

    found: bool = True
    # The CAs (fingerprints, in order) every webhook's caBundle holds; None when the webhooks
    # disagree or a caBundle does not parse.
    bundle: tuple[str, ...] | None = None
    changed_at: datetime | None = None  # when the caBundle was last written (our annotation)


@dataclass(frozen=True)
class State:
    bundle: tuple[Cert, ...]  # the Secret's trusted CAs, oldest first
    signing: str | None  # the bundle CA whose key the Secret holds
    serving: Serving | None
    published: Published
    files_current: bool  # the out-dir holds the Secret's pair and bundle


@dataclass(frozen=True)
class Policy:
    ca_validity: timedelta
    serving_validity: timedelta
    renew_before: float  # renew when less than this fraction of the validity is left
    grace: timedelta


@dataclass(frozen=True)
class NewCA:
    reason: str


@dataclass(frozen=True)
class IssueServing:
    reason: str


@dataclass(frozen=True)
class DropCAs:
    fingerprints: tuple[str, ...]
    reason: str


@dataclass(frozen=True)
class SaveSecret:
    """Write the Secret (optimistic concurrency: its resourceVersion)."""


@dataclass(frozen=True)
class WriteFiles:
    """Write the serving pair and the bundle to the out-dir."""


@dataclass(frozen=True)
class PublishBundle:
    reason: str


Action = NewCA | IssueServing | DropCAs | SaveSecret | WriteFiles | PublishBundle


def plan(state: State, now: datetime, policy: Policy) -> list[Action]:
    """The actions that bring the Secret, the files and the webhook configuration to where
    `policy` wants them at `now`, in order."""
    actions: list[Action] = []
    bundle, signing = state.bundle, state.signing
    ca_reason = _ca_reason(state, now, policy)
    if ca_reason is not None:
        actions.append(NewCA(ca_reason))
        bundle, signing = (*bundle, Cert(NEW, now, now + policy.ca_validity)), NEW
    signer = next(ca for ca in bundle if ca.fingerprint == signing)
    trusted_since = _trusted_since(state.published, signer.fingerprint)
    serving = state.serving
    serving_reason = _serving_reason(
        serving, bundle, signer, trusted_since=trusted_since, now=now, policy=policy
    )
    if serving_reason is not None:
        actions.append(IssueServing(serving_reason))
        not_after = min(now + policy.serving_validity, signer.not_after)
        serving = Serving(Cert(NEW, now, not_after), issuer=signer.fingerprint, names_match=True)
    dropped, drop_reason = _to_drop(bundle, signer, serving, now, policy)
    if dropped:
        actions.append(DropCAs(dropped, drop_reason))
        bundle = tuple(ca for ca in bundle if ca.fingerprint not in dropped)
    if actions:
        actions.append(SaveSecret())
    if actions or not state.files_current:
        actions.append(WriteFiles())
    publish_reason = _publish_reason(state.published, bundle)
    if publish_reason is not None:
        actions.append(PublishBundle(publish_reason))
    return actions


def _ca_reason(state: State, now: datetime, policy: Policy) -> str | None:
    ca = next((ca for ca in state.bundle if ca.fingerprint == state.signing), None)
    if ca is None:
        if state.bundle:
            return "the Secret holds no key for the CAs it trusts"
        return "the Secret holds no CA"
    left = ca.not_after - now
    if left <= timedelta(0):
        return "the CA has expired"
    if left < policy.renew_before * policy.ca_validity:
        return f"the CA expires in {format_duration(left)}"
    return None


def _trusted_since(published: Published, fingerprint: str) -> datetime | None:
    """Since when the webhook configuration has trusted the CA; None: it does not (yet)."""
    if published.found and published.bundle is not None and fingerprint in published.bundle:
        return published.changed_at
    return None


def _serving_reason(
    serving: Serving | None,
    bundle: tuple[Cert, ...],
    signer: Cert,
    *,
    trusted_since: datetime | None,
    now: datetime,
    policy: Policy,
) -> str | None:
    """Why the serving pair must be reissued now; None: keep it (for now)."""
    broken = _broken(serving, bundle, now)
    if broken is not None or serving is None:
        return broken
    left = serving.cert.not_after - now
    if serving.issuer != signer.fingerprint:
        # The switch to a new CA: only once the API servers have trusted it for `grace`.
        switch_at = (trusted_since or now) + policy.grace
        if trusted_since is not None and now >= switch_at:
            return "switching to the new CA"
        if serving.cert.not_after <= switch_at:
            return (
                f"it expires in {format_duration(left)}, before the new CA is trusted long enough"
            )
        return None
    if left < policy.renew_before * policy.serving_validity:
        return f"it expires in {format_duration(left)}"
    return None


def _broken(serving: Serving | None, bundle: tuple[Cert, ...], now: datetime) -> str | None:
    if serving is None:
        return "the Secret holds no serving pair"
    if not serving.names_match:
        return "the serving certificate does not name every DNS name and IP address"
    if serving.issuer not in {ca.fingerprint for ca in bundle}:
        return "no CA the Secret trusts signed the serving certificate"
    if serving.cert.not_after <= now:
        return "the serving certificate has expired"
    return None


def _to_drop(
    bundle: tuple[Cert, ...], signer: Cert, serving: Serving | None, now: datetime, policy: Policy
) -> tuple[tuple[str, ...], str]:
    """The CAs to take out of the bundle, and why."""
    expired = tuple(ca.fingerprint for ca in bundle if ca.not_after <= now)
    replaced = (
        serving is not None
        and serving.issuer == signer.fingerprint
        and now >= serving.cert.issued_at + policy.grace
    )
    if replaced:
        older = tuple(ca.fingerprint for ca in bundle if ca.fingerprint != signer.fingerprint)
        if older:
            return older, f"the serving pair has come from the newest CA for {_grace(policy)}"
    return tuple(fp for fp in expired if fp != signer.fingerprint), "expired"


def _publish_reason(published: Published, bundle: tuple[Cert, ...]) -> str | None:
    if not published.found:
        return "the webhook configuration is missing"
    if published.bundle != tuple(ca.fingerprint for ca in bundle):
        return "the webhook configuration trusts other CAs than the Secret"
    if published.changed_at is None:
        return "the webhook configuration does not say when its caBundle changed"
    return None


def _grace(policy: Policy) -> str:
    return format_duration(policy.grace)


def check_policy(policy: Policy, *, resync: timedelta) -> None:
    """FlagError naming the flags when the waits of a rotation cannot fit in the lifetimes."""
    if policy.grace < 2 * resync:
        raise FlagError(
            f"--rotation-grace ({_grace(policy)}) must be at least twice --resync "
            f"({format_duration(resync)}): every replica must have read a new pair and reloaded "
            "it before the old CA leaves the bundle"
        )
    serving_window = policy.renew_before * policy.serving_validity
    if serving_window < 2 * policy.grace:
        raise FlagError(
            f"--renew-before x --serving-validity ({format_duration(serving_window)}) must be at "
            f"least twice --rotation-grace ({_grace(policy)}): a renewal that waits for a new CA "
            "to be trusted must still land before the serving certificate expires"
        )
    ca_window = policy.renew_before * policy.ca_validity
    if ca_window < policy.serving_validity + 2 * policy.grace:
        raise FlagError(
            f"--renew-before x --ca-validity ({format_duration(ca_window)}) must be at least "
            "--serving-validity plus twice --rotation-grace "
            f"({format_duration(policy.serving_validity + 2 * policy.grace)}): a CA rotation must "
            "finish before the old CA expires, and no serving certificate may outlive its CA"
        )
