#!/usr/bin/env bash
# Builds the local control plane the e2e tests, the demo and the benchmarks run: kube-apiserver,
# kube-controller-manager, kube-scheduler and kubectl of Kubernetes $KUBERNETES_VERSION, and etcd
# $ETCD_VERSION, from Go modules with the machine's Go. Each version's binaries are cached under
# ~/.cache/headroom/controlplane/<version>/bin, so the cold build (~25 min on 2 cores) runs once per
# machine and version; a second run with the cache in place does nothing.
#
# Kubernetes is built the way projects that import k8s.io/kubernetes do: a small module requires
# k8s.io/kubernetes and pins each k8s.io/* staging module to the matching v0.<minor>.<patch> with a
# replace line. The list of staging modules is read from k8s.io/kubernetes's own go.mod, so any
# version the proxy serves builds the same way.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
want_k8s=${KUBERNETES_VERSION:-}; want_etcd=${ETCD_VERSION:-}
# shellcheck source=versions.env
. "$HERE/versions.env"
KUBERNETES_VERSION=${want_k8s:-$KUBERNETES_VERSION}; ETCD_VERSION=${want_etcd:-$ETCD_VERSION}
CACHE_DIR="${HEADROOM_CACHE:-$HOME/.cache/headroom}"
# Bump when the recipe changes, so machines with an older cache build again.
RECIPE=gomod-1

K8S_COMMANDS=(kube-apiserver kube-controller-manager kube-scheduler kubectl)
K8S_OUT="$CACHE_DIR/controlplane/kubernetes-$KUBERNETES_VERSION"
ETCD_OUT="$CACHE_DIR/controlplane/etcd-$ETCD_VERSION"

fail() { echo "build-control-plane: $*" >&2; exit 1; }
[[ $KUBERNETES_VERSION =~ ^1\.[0-9]+\.[0-9]+$ ]] ||
  fail "KUBERNETES_VERSION: expected a release such as 1.37.2 (got '$KUBERNETES_VERSION')"
[[ $ETCD_VERSION =~ ^3\.[0-9]+\.[0-9]+$ ]] ||
  fail "ETCD_VERSION: expected a release such as 3.6.17 (got '$ETCD_VERSION')"
command -v go >/dev/null || fail "Go is needed (the version k8s.io/kubernetes $KUBERNETES_VERSION names, or newer)"

complete() {  # complete DIR RECIPE-LINE BINARY...
  local dir=$1 stamp=$2; shift 2
  [ "$(cat "$dir/RECIPE" 2>/dev/null)" = "$stamp" ] || return 1
  for b in "$@"; do [ -x "$dir/bin/$b" ] || return 1; done
}

# The build module lives beside the binaries so a user can see exactly what was built from what.
build_module() {  # build_module DIR MODULE-PATH
  mkdir -p "$1"
  printf 'module %s\n\ngo %s\n' "$2" "$(go env GOVERSION | sed 's/^go//; s/^\([0-9]*\.[0-9]*\).*/\1/').0" > "$1/go.mod"
}

build_kubernetes() {
  local v=$KUBERNETES_VERSION minor staging mod src=$K8S_OUT/src
  minor=${v#*.}; minor=${minor%%.*}
  staging="0.${v#*.}"   # 1.37.2 -> 0.37.2, the staging modules' version
  build_module "$src" headroom.dev/controlplane/kubernetes
  local info
  info=$(cd "$src" && go mod download -json "k8s.io/kubernetes@v$v" 2>&1) ||
    fail "KUBERNETES_VERSION $v: the Go module proxy does not serve k8s.io/kubernetes@v$v:
$(printf '%s\n' "$info" | sed -n 's/.*"Error": "\(.*\)".*/  \1/p')"
  mod=$(printf '%s\n' "$info" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  {
    printf '\nrequire k8s.io/kubernetes v%s\n\nreplace (\n' "$v"
    # Each `k8s.io/x => ./staging/src/k8s.io/x` in kubernetes's go.mod becomes `k8s.io/x => k8s.io/x v0.N.P`.
    sed -n 's#^[[:space:]]*\(k8s\.io/[a-z0-9-]*\) => \./staging/src/.*#\t\1 => \1 v'"$staging"'#p' "$mod"
    printf ')\n'
  } >> "$src/go.mod"
  local ldflags="-s -w"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $pkg.gitVersion=v$v -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
  done
  local targets=()
  for c in "${K8S_COMMANDS[@]}"; do targets+=("k8s.io/kubernetes/cmd/$c"); done
  cd "$src"
  # `go get` records every module the four commands need (with checksums) in go.mod and go.sum.
  # Each path names the version: a bare package path would upgrade k8s.io/kubernetes to latest.
  go get "${targets[@]/%/@v$v}"
  CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$K8S_OUT/bin/" "${targets[@]}"
  echo "$RECIPE" > "$K8S_OUT/RECIPE"
}

build_etcd() {
  local src=$ETCD_OUT/src
  build_module "$src" headroom.dev/controlplane/etcd
  cd "$src"
  go get "go.etcd.io/etcd/server/v3@v$ETCD_VERSION"
  CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$ETCD_OUT/bin/etcd" go.etcd.io/etcd/server/v3
  echo "$RECIPE" > "$ETCD_OUT/RECIPE"
}

started=$SECONDS
if complete "$K8S_OUT" "$RECIPE" "${K8S_COMMANDS[@]}"; then
  echo "control plane: Kubernetes $KUBERNETES_VERSION cached in $K8S_OUT/bin"
else
  echo "control plane: building Kubernetes $KUBERNETES_VERSION from Go modules (once per machine)"
  (build_kubernetes)
fi
if complete "$ETCD_OUT" "$RECIPE" etcd; then
  echo "control plane: etcd $ETCD_VERSION cached in $ETCD_OUT/bin"
else
  echo "control plane: building etcd $ETCD_VERSION from Go modules (once per machine)"
  (build_etcd)
fi
if [ $((SECONDS - started)) -gt 5 ]; then
  echo "control plane: built in $((SECONDS - started)) s; $(du -sh "$CACHE_DIR/controlplane" | cut -f1) under $CACHE_DIR/controlplane"
fi
