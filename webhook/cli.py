"""The `headroom webhook` subcommand: validate the profiles, then serve the app under gunicorn.

Only argparse and the serving flags load at import (no Flask, no gunicorn), so `headroom --help`
stays fast.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from headroom.dra import DEFAULT_GPU_DRIVERS
from serving.server import add_arguments  # light: gunicorn itself is imported when serving

WEBHOOK_HELP = "Run the mutating admission webhook (HTTPS, under gunicorn)."
WEBHOOK_DESCRIPTION = (
    "Serve the mutating admission webhook: managed GPU pods get the tolerations, node affinity, "
    "readiness gate and scheduler of their profile. The profiles file is validated at start "
    "(a bad key exits with status 2, naming it) and reloaded when it changes. Pods whose GPUs "
    "come from DRA ResourceClaims have their claims read through the API (--in-cluster or "
    "--kubeconfig); without API access such pods are denied."
)
if TYPE_CHECKING:
    from webhook.config import WebhookConfig

APP = "webhook.app:create_app"  # called with the WebhookConfig


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `webhook` to the `headroom` parser."""
    parser = subparsers.add_parser("webhook", help=WEBHOOK_HELP, description=WEBHOOK_DESCRIPTION)
    parser.add_argument(
        "--profiles",
        metavar="FILE",
        required=True,
        help="the profiles YAML (mounted from a ConfigMap in the cluster)",
    )
    parser.add_argument(
        "--profile-poll-seconds",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="how often the profiles file is checked for changes (default: 5)",
    )
    access = parser.add_mutually_exclusive_group()
    access.add_argument(
        "--in-cluster",
        action="store_true",
        help="read DRA pods' ResourceClaims and ResourceClaimTemplates as the pod's own "
        "ServiceAccount (in the cluster)",
    )
    access.add_argument(
        "--kubeconfig",
        metavar="FILE",
        help="read DRA pods' claims through this kubeconfig instead (default: no API access, "
        "and pods with claims are denied)",
    )
    parser.add_argument(
        "--gpu-device-classes",
        metavar="NAMES",
        default=",".join(DEFAULT_GPU_DRIVERS),
        help="the DeviceClasses whose requests are GPUs, separated by commas "
        f"(default: {','.join(DEFAULT_GPU_DRIVERS)})",
    )
    add_arguments(parser, default_bind="0.0.0.0:8443")  # the Service sends to the pod IP
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from serving import logs  # noqa: PLC0415
    from serving import server as serving  # noqa: PLC0415
    from webhook.config import WebhookConfig, parse_device_classes  # noqa: PLC0415
    from webhook.profiles import ProfileError  # noqa: PLC0415
    from webhook.store import load_profiles  # noqa: PLC0415

    path = Path(args.profiles)
    # The workers build the app from this (gunicorn imports it by name). absolute(), not
    # resolve(): the mounted ConfigMap's symlinks are what change on an update.
    config = WebhookConfig(
        profiles=path.absolute(),
        profile_poll_seconds=args.profile_poll_seconds,
        kubeconfig=args.kubeconfig,
        in_cluster=args.in_cluster,
        gpu_device_classes=parse_device_classes(args.gpu_device_classes),
    )
    problem = config.problem() or _access_problem(config)
    if problem:
        print(f"headroom webhook: error: {problem}", file=sys.stderr)
        return 2
    try:
        profiles = load_profiles(path)
        options = serving.options_from_args(args, app=APP, name="headroom-webhook", config=config)
        serving.validate(options)
    except (ProfileError, OSError) as exc:
        print(f"headroom webhook: error: {path}: {exc}", file=sys.stderr)
        return 2
    except serving.ServeError as exc:
        print(f"headroom webhook: error: {exc}", file=sys.stderr)
        return 2
    if not args.profile_poll_seconds > 0:
        print(
            "headroom webhook: error: --profile-poll-seconds: expected a number of seconds "
            f"above 0 (got {args.profile_poll_seconds})",
            file=sys.stderr,
        )
        return 2
    logs.configure(args.log_level.upper())
    logging.getLogger("webhook").info(
        "profiles loaded",
        extra=logs.log_fields(
            path=str(path), digest=profiles.digest, profiles=sorted(profiles.profiles)
        ),
    )
    return serving.run(options)


def _access_problem(config: WebhookConfig) -> str | None:
    if not config.api_access:
        return None
    from webhook.claims import access_problem  # noqa: PLC0415 - loads the Kubernetes client

    return access_problem(config)
