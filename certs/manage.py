"""`headroom certs manage`: keep the webhook's CA, serving pair and caBundle, once or forever.

Each round reads the Secret and the webhook configuration (`certs.cluster`), asks
`rotation.plan` what to change, makes the new certificates (`certs.material`), saves the Secret
(a Conflict, e.g. the other replica's manager won a race, restarts the round from fresh reads,
so the loser adopts the winner's pair), writes the out-dir (`certs.files`: only what changed;
the webhook's reloader picks it up) and publishes the caBundle. The loop runs a round every
`--resync`; a failed round (API server unreachable, 403, a missing object) is logged and retried
with backoff, and the files already written stay served.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from certs import material as mat
from certs.cluster import CertsCluster, StoredConfiguration, connect
from certs.durations import FlagError, format_duration, parse_duration, parse_fraction
from certs.files import files_hold, sync_files
from certs.generate import CertsError, check_names, check_subdomain
from certs.rotation import (
    Action,
    DropCAs,
    IssueServing,
    NewCA,
    Policy,
    PublishBundle,
    Published,
    SaveSecret,
    State,
    WriteFiles,
    check_policy,
    plan,
)
from headroom.backoff import Backoff
from kubeapi.client import ApiError, Conflict
from serving.logs import configure, log_fields

log = logging.getLogger(__name__)
MAX_CONFLICTS = 5  # rounds restarted from fresh reads before the loop's backoff takes over


@dataclass(frozen=True)
class ManageSettings:
    names: mat.Names
    secret: str
    webhook_configuration: str
    out_dir: Path
    policy: Policy
    resync: timedelta


def settings_from_args(args: argparse.Namespace) -> ManageSettings:
    """The settings the flags give; FlagError or CertsError naming the flag otherwise."""
    check_names(
        service=args.service,
        namespace=args.namespace,
        ips=args.ip,
        secret_name=args.secret,
        secret_flag="--secret",  # noqa: S106 - a flag, no password
    )
    check_subdomain(args.webhook_configuration, flag="--webhook-configuration")
    policy = Policy(
        ca_validity=parse_duration(args.ca_validity, flag="--ca-validity"),
        serving_validity=parse_duration(args.serving_validity, flag="--serving-validity"),
        renew_before=parse_fraction(args.renew_before, flag="--renew-before"),
        grace=parse_duration(args.rotation_grace, flag="--rotation-grace"),
    )
    resync = parse_duration(args.resync, flag="--resync")
    check_policy(policy, resync=resync)
    return ManageSettings(
        names=mat.Names(args.service, args.namespace, tuple(args.ip)),
        secret=args.secret,
        webhook_configuration=args.webhook_configuration,
        out_dir=Path(args.out_dir),
        policy=policy,
        resync=resync,
    )


def published(config: StoredConfiguration | None) -> Published:
    """What the webhook configuration trusts, as the plan reads it."""
    if config is None:
        return Published(found=False)
    trusted = {mat.ca_bundle_fingerprints(bundle) for bundle in config.ca_bundles}
    bundle = trusted.pop() if len(trusted) == 1 else None
    return Published(found=True, bundle=bundle, changed_at=config.changed_at)


class Manager:
    """One replica's manager: `reconcile()` is a round, `run(stop)` the loop."""

    def __init__(
        self,
        cluster: CertsCluster,
        settings: ManageSettings,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.cluster, self.settings, self.clock = cluster, settings, clock

    def reconcile(self) -> list[Action]:
        """One round, restarted from fresh reads on a Conflict; the actions it took."""
        for _ in range(MAX_CONFLICTS - 1):
            try:
                return self._round()
            except Conflict as exc:
                log.info("another writer changed the object; reading again", extra=_err(exc))
        return self._round()

    def _round(self) -> list[Action]:
        stored = self.cluster.read_secret()
        material = mat.parse(stored.data)
        config = self.cluster.read_configuration()
        bundle, signing, serving = mat.summarize(material, self.settings.names)
        files_current = files_hold(self.settings.out_dir, mat.out_files(material))
        state = State(bundle, signing, serving, published(config), files_current)
        now = self.clock()
        actions = plan(state, now, self.settings.policy)
        changes = [a for a in actions if isinstance(a, NewCA | IssueServing | DropCAs)]
        if changes and material.problems:
            log.warning("repairing the Secret", extra=log_fields(problems=list(material.problems)))
        policy, names = self.settings.policy, self.settings.names
        material = mat.apply(material, changes, policy=policy, names=names)
        if any(isinstance(a, SaveSecret) for a in actions):
            stored = self.cluster.save_secret(stored, {**stored.data, **mat.secret_data(material)})
            for change in changes:  # logged once saved: a Conflict changed nothing
                _log_change(change, material)
            log.info("Secret saved", extra=self._fields(version=_version(stored.body)))
        if any(isinstance(a, WriteFiles) for a in actions):
            self._write_files(material)
        for action in actions:
            if isinstance(action, PublishBundle):
                self.cluster.publish_bundle(config, mat.bundle_pem(material), now=now)
                log.info(
                    "caBundle published",
                    extra=self._fields(reason=action.reason, cas=len(material.bundle)),
                )
        return actions

    def _write_files(self, material: mat.Material) -> None:
        self.settings.out_dir.mkdir(parents=True, exist_ok=True)
        written = sync_files(self.settings.out_dir, mat.out_files(material))
        if written:
            log.info(
                "files written", extra=log_fields(out_dir=str(self.settings.out_dir), files=written)
            )

    def _fields(self, **fields: object) -> dict[str, object]:
        return log_fields(
            secret=f"{self.settings.names.namespace}/{self.settings.secret}",
            webhook_configuration=self.settings.webhook_configuration,
            **fields,
        )

    def run(self, stop: threading.Event) -> None:
        """Reconcile every `resync` until `stop` is set; failures back off up to `resync`."""
        resync_seconds = self.settings.resync.total_seconds()
        backoff = Backoff(initial_seconds=min(1.0, resync_seconds), max_seconds=resync_seconds)
        while not stop.is_set():
            delay = resync_seconds
            try:
                self.reconcile()
                backoff.reset()
            except (ApiError, OSError) as exc:
                delay = backoff.next_delay()
                log.error(
                    "reconcile failed; the files already written stay served",
                    extra=log_fields(
                        error=str(exc), hint=_hint(exc, self.settings), retry_in_seconds=delay
                    ),
                )
            stop.wait(delay)


def _log_change(action: NewCA | IssueServing | DropCAs, material: mat.Material) -> None:
    if isinstance(action, NewCA):
        assert material.signing is not None  # apply made it
        ca = material.signing.certificate()
        log.info(
            "new CA added to the bundle",
            extra=log_fields(
                reason=action.reason,
                ca=mat.fingerprint(ca)[:16],
                not_after=ca.not_valid_after_utc.isoformat(),
            ),
        )
    elif isinstance(action, IssueServing):
        assert material.serving is not None
        cert = material.serving.certificate()
        log.info(
            "new serving pair",
            extra=log_fields(reason=action.reason, not_after=cert.not_valid_after_utc.isoformat()),
        )
    else:
        dropped = [fp[:16] for fp in action.fingerprints]
        log.info("CAs left the bundle", extra=log_fields(reason=action.reason, cas=dropped))


def _version(body: dict[str, object]) -> object:
    metadata = body.get("metadata")
    return metadata.get("resourceVersion") if isinstance(metadata, dict) else None


def _err(exc: BaseException) -> dict[str, object]:
    return log_fields(error=str(exc))


def _hint(exc: BaseException, settings: ManageSettings) -> str | None:
    if isinstance(exc, ApiError) and exc.status == 403:
        return (
            f"the ServiceAccount needs get and update on the Secret {settings.secret} in "
            f"{settings.names.namespace} and on the MutatingWebhookConfiguration "
            f"{settings.webhook_configuration}"
        )
    return None


def run(args: argparse.Namespace) -> int:
    """`headroom certs manage`: 2 for bad flags, 1 when `--once` fails, 0 otherwise."""
    try:
        settings = settings_from_args(args)
    except (FlagError, CertsError) as exc:
        return _fail(exc, status=2)
    try:
        kube = connect(args.kubeconfig, in_cluster=args.in_cluster)
    except Exception as exc:  # the client's ConfigException, or a bad file's own error
        return _fail(exc, status=2)
    configure(args.log_level.upper())
    cluster = CertsCluster(
        kube,
        namespace=settings.names.namespace,
        secret=settings.secret,
        configuration=settings.webhook_configuration,
    )
    manager = Manager(cluster, settings)
    log.info("managing", extra=_settings_fields(settings))
    if args.once:
        try:
            manager.reconcile()
        except (ApiError, OSError) as exc:
            return _fail(exc, status=1)
        return 0
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    manager.run(stop)
    log.info("stopped")
    return 0


def _settings_fields(settings: ManageSettings) -> dict[str, object]:
    policy = settings.policy
    return log_fields(
        secret=f"{settings.names.namespace}/{settings.secret}",
        webhook_configuration=settings.webhook_configuration,
        service=settings.names.service,
        ip_addresses=list(settings.names.ip_addresses),
        out_dir=str(settings.out_dir),
        ca_validity=format_duration(policy.ca_validity),
        serving_validity=format_duration(policy.serving_validity),
        renew_before=policy.renew_before,
        rotation_grace=format_duration(policy.grace),
        resync=format_duration(settings.resync),
    )


def _fail(exc: BaseException, *, status: int) -> int:
    print(f"headroom certs manage: error: {exc}", file=sys.stderr)
    return status
