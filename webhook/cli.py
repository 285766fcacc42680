"""The `headroom webhook` subcommand: validate the profiles, then serve the app under gunicorn.

Only argparse and the serving flags load at import (no Flask, no gunicorn), so `headroom --help`
stays fast.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from serving.server import add_arguments  # light: gunicorn itself is imported when serving

WEBHOOK_HELP = "Run the mutating admission webhook (HTTPS, under gunicorn)."
WEBHOOK_DESCRIPTION = (
    "Serve the mutating admission webhook: managed GPU pods get the tolerations, node affinity, "
    "readiness gate and scheduler of their profile. The profiles file is validated at start "
    "(a bad key exits with status 2, naming it) and reloaded when it changes."
)
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
    add_arguments(parser, default_bind="0.0.0.0:8443")  # the Service sends to the pod IP
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from serving import logs  # noqa: PLC0415
    from serving import server as serving  # noqa: PLC0415
    from webhook.config import WebhookConfig  # noqa: PLC0415
    from webhook.profiles import ProfileError  # noqa: PLC0415
    from webhook.store import load_profiles  # noqa: PLC0415

    path = Path(args.profiles)
    # The workers build the app from this (gunicorn imports it by name). absolute(), not
    # resolve(): the mounted ConfigMap's symlinks are what change on an update.
    config = WebhookConfig(profiles=path.absolute(), profile_poll_seconds=args.profile_poll_seconds)
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
