"""The `headroom certs` subcommand: `headroom certs generate` writes a service's TLS material.

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


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `certs` and its `generate` subcommand to the `headroom` parser."""
    certs = subparsers.add_parser("certs", help=CERTS_HELP, description=CERTS_DESCRIPTION)
    actions = certs.add_subparsers(dest="certs_command", metavar="SUBCOMMAND", required=True)
    generate = actions.add_parser("generate", help=GENERATE_HELP, description=GENERATE_DESCRIPTION)
    _add_generate_arguments(generate)
    generate.set_defaults(run=run)


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
