#!/usr/bin/env bash
# Builds helm $HELM_VERSION (versions.env) from the Go module helm.sh/helm/v3 with the machine's Go,
# the way tooling/controlplane/build.sh builds the control plane: a small module of our own requires
# helm.sh/helm/v3 at that version, `go get` records what cmd/helm imports, `go build` makes the
# binary. The k8s.io modules stay at the versions helm's own go.mod names (no replace lines needed:
# helm requires every k8s.io module at one version). The ldflags are the ones helm's Makefile sets:
# the version, and the Kubernetes version `helm template` and `helm lint` assume without a cluster
# (from the client-go helm was built with).
#
#   ~/.cache/headroom/helm-<version>/bin/helm     the binary
#   ~/.cache/headroom/helm-<version>/src/         the build module (go.mod, go.sum)
#   ~/.cache/headroom/helm-<version>/RECIPE       written last: a cache with it is complete
#
# Once per machine and version (a cold build took 78 s on a 2-core machine, module downloads
# included); with the cache in place it says so and does nothing. $HEADROOM_CACHE moves the cache root, as for the control plane.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
want=${HELM_VERSION:-}
# shellcheck source=versions.env
. "$HERE/versions.env"
HELM_VERSION=${want:-$HELM_VERSION}
CACHE_DIR="${HEADROOM_CACHE:-$HOME/.cache/headroom}"
# Bump when the recipe changes, so machines with an older cache build again.
RECIPE=gomod-1

MODULE=helm.sh/helm/v3
OUT="$CACHE_DIR/helm-$HELM_VERSION"
BIN="$OUT/bin/helm"

fail() { echo "build-helm: $*" >&2; exit 1; }
[[ $HELM_VERSION =~ ^3\.[0-9]+\.[0-9]+$ ]] ||
  fail "HELM_VERSION: expected a helm 3 release such as 3.21.4 (got '$HELM_VERSION')"

if [ -x "$BIN" ] && [ "$(cat "$OUT/RECIPE" 2>/dev/null)" = "$RECIPE" ]; then
  echo "helm: $HELM_VERSION cached in $OUT/bin"
  exit 0
fi
command -v go >/dev/null || fail "Go is needed (the version helm $HELM_VERSION's go.mod names, or newer)"
# No toolchain downloads behind the user's back: a module that needs a newer Go says so and fails.
export GOTOOLCHAIN="${GOTOOLCHAIN:-local}"

echo "helm: building $HELM_VERSION from Go modules (once per machine)"
started=$SECONDS
rm -rf "$OUT"
src="$OUT/src"
mkdir -p "$src"
printf 'module headroom.dev/helm\n\ngo %s\n' \
  "$(go env GOVERSION | sed 's/^go//; s/^\([0-9]*\.[0-9]*\).*/\1/').0" > "$src/go.mod"
cd "$src"

info=$(go mod download -json "$MODULE@v$HELM_VERSION" 2>&1) ||
  fail "HELM_VERSION $HELM_VERSION: the Go module proxy does not serve $MODULE@v$HELM_VERSION:
$(printf '%s\n' "$info" | sed -n 's/.*"Error": "\(.*\)".*/  \1/p')"
# The path names the version: a bare package path would upgrade the module to its latest.
go get "$MODULE/cmd/helm@v$HELM_VERSION"

# The Kubernetes version helm assumes offline is one minor past client-go's v0.<minor>, as in
# helm's Makefile (client-go v0.36.2 -> Kubernetes 1.36).
client_go=$(go list -m -f '{{.Version}}' k8s.io/client-go)
k8s_minor=$(printf '%s' "$client_go" | sed 's/^v0\.\([0-9]*\)\..*/\1/')
[[ $k8s_minor =~ ^[0-9]+$ ]] || fail "cannot read the client-go version helm builds with (got '$client_go')"
ldflags="-s -w -X $MODULE/internal/version.version=v$HELM_VERSION"
ldflags+=" -X $MODULE/internal/version.metadata= -X $MODULE/internal/version.gitTreeState=clean"
for pkg in pkg/lint/rules pkg/chartutil; do
  ldflags+=" -X $MODULE/$pkg.k8sVersionMajor=1 -X $MODULE/$pkg.k8sVersionMinor=$k8s_minor"
done
CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$OUT/bin/helm" "$MODULE/cmd/helm"
"$BIN" version --short >/dev/null || fail "the built $BIN does not run"
echo "$RECIPE" > "$OUT/RECIPE"
echo "helm: built $("$BIN" version --short) in $((SECONDS - started)) s (client-go $client_go) in $OUT/bin"
