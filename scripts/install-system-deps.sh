#!/usr/bin/env bash
# Installs the Debian packages the suite needs beyond Python itself: a C compiler (the fake NVML
# library is compiled by the tests), openssl (certificates are checked with `openssl verify`), the
# venv module on Debian's own Python, Prometheus (the scaler's tests query a real one), and wrk
# for the webhook benchmark. Does nothing when everything is already there.
set -euo pipefail
PYTHON="${PYTHON:-python3}"
need=()
command -v gcc >/dev/null 2>&1 || need+=(gcc libc6-dev)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
"$PYTHON" -c 'import ensurepip' >/dev/null 2>&1 || need+=(python3-venv)
command -v wrk >/dev/null 2>&1 || need+=(wrk)  # the load generator of bench/webhook.py
command -v prometheus >/dev/null 2>&1 || need+=(prometheus)  # the scaler's metric source tests
[ ${#need[@]} -eq 0 ] && exit 0
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
export DEBIAN_FRONTEND=noninteractive
as_root apt-get update -qq
as_root apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
