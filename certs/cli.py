"""The `headroom certs` subcommand: `headroom certs generate` writes a service's TLS material once;
`headroom certs manage` keeps the webhook's in its Secret, its files and its caBundle, rotating it.

Only argparse is imported at module level so `headroom --help` stays fast; `run` imports the
certificate code when it is needed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from headroom.names import SYSTEM_NAMESPACE

CERTS_HELP = "Create the TLS certificates Headroom's in-cluster services serve with."
CERTS_DESCRIPTION = (
    "Create TLS certificates for Headroom's in-cluster services (such as the admission webhook): "
    "a private CA and a serving certificate signed by it."
)
GENERATE_HELP = "Write a CA, a serving certificate, a TLS Secret and a caBundle to a directory."
GENERATE_DESCRIPTION = (
    "Write a private CA (ca.crt, ca.key), a serving certificate for a Kubernetes Service "
    "(tls.crt, tls.key), a kubernetes.io/tls Secret manifest (secret.yaml) and the webhook "
    "caBundle (cabundle.txt) to --out. Existing files are kept unless --force (regenerate "
    "everything) or --reuse-ca (keep the CA, reissue the rest) is given."
)


MANAGE_HELP = "Keep the webhook's CA and serving pair in its Secret and caBundle, rotating them."
MANAGE_DESCRIPTION = (
    "Self-managed certificates for the admission webhook (run as a sidecar of the webhook pod): "
    "creates a CA and a serving pair in the Secret --secret when it holds none, writes tls.crt, "
    "tls.key and ca.crt to --out-dir for the webhook, and puts the CA bundle into the caBundle of "
    "every webhook of --webhook-configuration. Then, every --resync, renews the serving pair when "
    "less than --renew-before of --serving-validity is left, and rotates the CA the same way: the "
    "new CA is trusted first, the pair switches to it after --rotation-grace, and the old CA is "
    "dropped after another. Durations are written like 90d, 12h, 1h30m, 10m or 45s."
)
TLS_SECRET = "headroom-webhook-tls"  # noqa: S105 - the name of a Secret, no secret
DEFAULT_SERVICE = "headroom-webhook"
DEFAULT_CONFIGURATION = "headroom-webhook"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `certs` and its `generate` and `manage` subcommands to the `headroom` parser."""
    certs = subparsers.add_parser("certs", help=CERTS_HELP, description=CERTS_DESCRIPTION)
    actions = certs.add_subparsers(dest="certs_command", metavar="SUBCOMMAND", required=True)
    generate = actions.add_parser("generate", help=GENERATE_HELP, description=GENERATE_DESCRIPTION)
    _add_generate_arguments(generate)
    generate.set_defaults(run=run)
    manage = actions.add_parser("manage", help=MANAGE_HELP, description=MANAGE_DESCRIPTION)
    _add_manage_arguments(manage)
    manage.set_defaults(run=run_manage)


def _add_generate_arguments(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--out", metavar="DIR", required=True, help="directory to write to (created if missing)")
    add("--service", metavar="NAME", required=True, help="the Service the certificate is for")
    add(
        "--namespace",
        metavar="NS",
        default=SYSTEM_NAMESPACE,
        help=f"the Service's namespace (default: {SYSTEM_NAMESPACE})",
    )
    add(
        "--ip",
        metavar="IP",
        action="append",
        default=[],
        help="an IP address to add to the certificate's names (repeatable)",
    )
    add("--secret-name", metavar="NAME", help="name of the Secret (default: SERVICE-tls)")
    add("--days", type=int, default=365, help="serving certificate validity (default: 365)")
    add("--force", action="store_true", help="overwrite everything, CA included")
    add("--reuse-ca", action="store_true", help="keep ca.crt/ca.key, reissue the rest")


def _add_manage_arguments(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add(
        "--out-dir",
        metavar="DIR",
        required=True,
        help="where to write tls.crt, tls.key and ca.crt for the webhook (created if missing)",
    )
    add(
        "--namespace",
        metavar="NS",
        default=SYSTEM_NAMESPACE,
        help=f"the namespace of the Secret and the Service {_default(SYSTEM_NAMESPACE)}",
    )
    add(
        "--secret",
        metavar="NAME",
        default=TLS_SECRET,
        help=f"the Secret that keeps the CA and the pair; the install creates it empty "
        f"{_default(TLS_SECRET)}",
    )
    add(
        "--service",
        metavar="NAME",
        default=DEFAULT_SERVICE,
        help=f"the Service whose DNS names the certificate carries {_default(DEFAULT_SERVICE)}",
    )
    add(
        "--webhook-configuration",
        metavar="NAME",
        default=DEFAULT_CONFIGURATION,
        help=f"the MutatingWebhookConfiguration whose caBundle to keep "
        f"(default: {DEFAULT_CONFIGURATION})",
    )
    add(
        "--ip",
        metavar="IP",
        action="append",
        default=[],
        help="an IP address the certificate carries too (repeatable)",
    )
    add("--ca-validity", metavar="DURATION", default="365d", help="a CA's lifetime (default: 365d)")
    add(
        "--serving-validity",
        metavar="DURATION",
        default="30d",
        help="a serving pair's lifetime (default: 30d)",
    )
    add(
        "--renew-before",
        metavar="FRACTION",
        default="1/3",
        help="renew when less than this part of the validity is left (default: 1/3)",
    )
    add(
        "--rotation-grace",
        metavar="DURATION",
        default="1h",
        help="how long a new CA is trusted before the pair switches to it, and the new pair is "
        "served before the old CA is dropped (default: 1h)",
    )
    add("--resync", metavar="DURATION", default="1m", help="how often to check (default: 1m)")
    add("--once", action="store_true", help="reconcile once and exit (1 if that failed)")
    access = parser.add_mutually_exclusive_group()
    access.add_argument(
        "--in-cluster", action="store_true", help="use the pod's ServiceAccount (in the cluster)"
    )
    access.add_argument(
        "--kubeconfig",
        metavar="FILE",
        help="use this kubeconfig (default: $KUBECONFIG, ~/.kube/config, else the pod's account)",
    )
    add(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="log level (default: info)",
    )


def _default(value: str) -> str:
    return f"(default: {value})"


def run_manage(args: argparse.Namespace) -> int:
    """Run `headroom certs manage` (imported here: it loads the Kubernetes client)."""
    from certs.manage import run as manage  # noqa: PLC0415

    return manage(args)


def run(args: argparse.Namespace) -> int:
    """Generate the files `args` asks for; 0 on success, 2 with a one-line error otherwise."""
    # Imported here, not at the top: `cryptography` and `yaml` are only needed to generate.
    from certs.generate import CertsError, generate  # noqa: PLC0415

    try:
        files = generate(
            Path(args.out),
            service=args.service,
            namespace=args.namespace,
            ip_addresses=args.ip,
            force=args.force,
            reuse_ca=args.reuse_ca,
            secret_name=args.secret_name,
            valid_days=args.days,
        )
    except (CertsError, OSError) as exc:
        print(f"headroom certs generate: error: {exc}", file=sys.stderr)
        return 2
    if files.reused_ca:
        print(f"kept {files.ca_cert} and {files.ca_key}")
    for path in files.written():
        print(f"wrote {path}")
    print(f"caBundle: put the single line in {files.ca_bundle} into clientConfig.caBundle")
    return 0
