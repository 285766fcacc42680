#!/usr/bin/env bash
# Builds the Kubernetes control plane (kube-apiserver, kube-controller-manager, kube-scheduler,
# kubectl) that the e2e tests and the demo run, from Debian's `kubernetes` source package, and
# installs etcd from Debian. The binaries are cached under ~/.cache/headroom/ so the ~10 minute
# build runs once per machine. Idempotent: a second run with the cache in place does nothing.
set -euo pipefail
SCRIPT_DIR="$(cd "$(dirname "$0")" && pwd)"

CACHE_DIR="${HEADROOM_CACHE:-$HOME/.cache/headroom}"
BIN_DIR="$CACHE_DIR/bin"
BINARIES=(kube-apiserver kube-controller-manager kube-scheduler kubectl)
# Bump when the recipe changes, so machines with an older cache build again.
RECIPE="1.20.2-debian+go119-patches-2"

have_all() {
  [ "$(cat "$BIN_DIR/RECIPE" 2>/dev/null)" = "$RECIPE" ] || return 1
  for b in "${BINARIES[@]}"; do [ -x "$BIN_DIR/$b" ] || return 1; done
  command -v etcd >/dev/null 2>&1 || [ -x /usr/bin/etcd ] || return 1
}

if have_all; then
  echo "control plane: cached in $BIN_DIR"
  exit 0
fi

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# Debian's deb822 sources list the suites already configured; add the matching deb-src entries
# (only once) so `apt-get source` can fetch the kubernetes source package.
SRC_LIST=/etc/apt/sources.list.d/headroom-src.sources
if [ ! -f "$SRC_LIST" ]; then
  if [ -f /etc/apt/sources.list.d/debian.sources ]; then
    sed -e 's/^Types: deb$/Types: deb-src/' /etc/apt/sources.list.d/debian.sources |
      as_root tee "$SRC_LIST" >/dev/null
  else
    grep -E '^deb ' /etc/apt/sources.list | sed 's/^deb /deb-src /' | as_root tee "$SRC_LIST" >/dev/null
  fi
fi
export DEBIAN_FRONTEND=noninteractive
as_root apt-get update -qq
as_root apt-get install -y -qq --no-install-recommends \
  golang-go etcd-server jq rsync dpkg-dev make gcc ca-certificates >/dev/null

BUILD_DIR="$CACHE_DIR/build"
mkdir -p "$BUILD_DIR" "$BIN_DIR"
cd "$BUILD_DIR"
SRC=$(find . -maxdepth 1 -type d -name 'kubernetes-*' | head -n 1)
if [ -z "$SRC" ]; then
  apt-get source --download-only kubernetes >/dev/null
  dpkg-source --no-check -x kubernetes_*.dsc >/dev/null
  SRC=$(find . -maxdepth 1 -type d -name 'kubernetes-*' | head -n 1)
fi
SRC=$(cd "$SRC" && pwd)

# The 1.20 tree predates Go 1.18; two vendored libraries need adapting to Go 1.19 (see the script).
bash "$SCRIPT_DIR/patch-k8s-go119.sh" "$SRC"

# The 1.20 tree builds in GOPATH mode from k8s.io/kubernetes with its vendored modules.
export GOPATH="$BUILD_DIR/.go"
mkdir -p "$GOPATH/src/k8s.io"
ln -sfn "$SRC" "$GOPATH/src/k8s.io/kubernetes"
export GO111MODULE=off CGO_ENABLED=0 GOFLAGS=
cd "$GOPATH/src/k8s.io/kubernetes"
make WHAT="cmd/kube-apiserver cmd/kube-controller-manager cmd/kube-scheduler cmd/kubectl"
for b in "${BINARIES[@]}"; do
  install -m 0755 "_output/bin/$b" "$BIN_DIR/$b"
done
echo "$RECIPE" > "$BIN_DIR/RECIPE"
# The source tree and Go caches are ~2 GiB; only the binaries are worth keeping.
rm -rf "$BUILD_DIR" "$(go env GOCACHE 2>/dev/null || echo /nonexistent)"
echo "control plane: built into $BIN_DIR"
