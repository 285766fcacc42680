"""Headroom's TLS material: a private CA and the certificates its services serve and present.

`pki` builds certificates in memory (ECDSA P-256, via `cryptography`); `generate` writes a CA, a
serving certificate, a `kubernetes.io/tls` Secret manifest and a webhook caBundle to a directory;
`cli` is the `headroom certs` subcommand.
"""
