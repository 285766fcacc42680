#!/usr/bin/env bash
# Builds NVIDIA's mock NVML library for the node agent's tests (tests/nodeagent/test_mocknvml.py):
# the libnvidia-ml.so of the Go module github.com/NVIDIA/k8s-test-infra, package
# pkg/gpu/mocknvml/bridge (a cgo `package main` that NVIDIA builds with -buildmode=c-shared), at
# $MOCKNVML_VERSION, with the machine's Go and gcc. It is configured at run time by GPU profiles
# (YAML files named by $MOCK_NVML_CONFIG), so the profiles the module ships are copied beside it:
#
#   ~/.cache/headroom/mocknvml/<version>/lib/libnvidia-ml.so.1
#   ~/.cache/headroom/mocknvml/<version>/configs/mock-nvml-config-*.yaml   (a100, h100, ...)
#   ~/.cache/headroom/mocknvml/<version>/src/                              (the build module)
#
# The build module under src/ requires the module at the pinned version, so a user can see exactly
# what was built from what. Once per machine and version: with the library in place it prints
# "cached" and does nothing. $HEADROOM_CACHE moves the cache root, as for the control plane.
#
# Prints the output directory on stdout (progress goes to stderr). Exit status: 0 built or cached;
# 3 the module cannot be had here (the Go module proxy does not serve that version, or Go/gcc is
# missing), so there is nothing to build and the tests that need it skip saying why; 1 anything
# else, such as a served version that no longer builds this way.
set -euo pipefail

# The newest release in the module's CHANGELOG (v0.4.0-rc1 is a pre-release). Pinned, not
# "latest": a new mock version can change what a profile says, and the tests read the profiles.
# When this was written the Go module proxy this project reaches refused the module (403, for every
# version), so no version has been built by this script yet: the first one that is may need the
# package path or flags below adjusted, which the script's failures name.
MOCKNVML_VERSION="${MOCKNVML_VERSION:-v0.3.0}"
CACHE_DIR="${HEADROOM_CACHE:-$HOME/.cache/headroom}"
# Bump when the recipe changes, so machines with an older cache build again.
RECIPE=gomod-c-shared-1

MODULE=github.com/NVIDIA/k8s-test-infra
PACKAGE=$MODULE/pkg/gpu/mocknvml/bridge
OUT="$CACHE_DIR/mocknvml/$MOCKNVML_VERSION"
LIB="$OUT/lib/libnvidia-ml.so.1"
UNAVAILABLE=3

say() { echo "mock NVML $MOCKNVML_VERSION: $*" >&2; }
unavailable() {
  say "$*"
  [ -f "$LIB" ] || { rm -rf "$OUT"; rmdir "$CACHE_DIR/mocknvml" 2>/dev/null || true; }
  exit "$UNAVAILABLE"
}
fail() { say "$*"; exit 1; }

if [ -f "$LIB" ] && [ "$(cat "$OUT/RECIPE" 2>/dev/null)" = "$RECIPE" ]; then
  say "cached in $OUT"
  echo "$OUT"
  exit 0
fi

command -v go >/dev/null || unavailable "Go is needed to build the mock (cgo, -buildmode=c-shared)"
command -v gcc >/dev/null || unavailable "gcc is needed to build the mock (cgo); scripts/install-system-deps.sh installs it"
# No toolchain downloads behind the user's back: a module that needs a newer Go says so and fails.
export GOTOOLCHAIN="${GOTOOLCHAIN:-local}"

started=$SECONDS
mkdir -p "$OUT"
src="$OUT/src"
rm -rf "$src"
mkdir -p "$src"
printf 'module headroom.dev/mocknvml\n\ngo %s\n' \
  "$(go env GOVERSION | sed 's/^go//; s/^\([0-9]*\.[0-9]*\).*/\1/').0" > "$src/go.mod"
cd "$src"

# Fetch the module first, so "the proxy does not serve it" is told apart from "it does not build".
download=$(go mod download -json "$MODULE@$MOCKNVML_VERSION" 2>&1 || true)
error=$(printf '%s\n' "$download" | sed -n 's/^[[:space:]]*"Error": "\(.*\)",*$/\1/p' | sed 's/\\n/ /g; s/\\t/ /g')
dir=$(printf '%s\n' "$download" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",*$/\1/p')
if [ -n "$error" ] || [ -z "$dir" ]; then
  unavailable "the Go module proxy ($(go env GOPROXY)) does not serve $MODULE@$MOCKNVML_VERSION: ${error:-$download}"
fi
mock="$dir/pkg/gpu/mocknvml"
ls "$mock/bridge/"*.go >/dev/null 2>&1 \
  || fail "$MODULE@$MOCKNVML_VERSION has no package pkg/gpu/mocknvml/bridge in its module (the cgo bridge that is the library); see $mock"
ls "$mock/configs/"*.yaml >/dev/null 2>&1 \
  || fail "$MODULE@$MOCKNVML_VERSION ships no GPU profiles in $mock/configs"

# `go get` of the package (not only the module) records every module it imports in go.mod/go.sum.
say "building $PACKAGE (once per machine)"
go get "$PACKAGE@$MOCKNVML_VERSION" || fail "go get $PACKAGE@$MOCKNVML_VERSION failed (see above)"

# Built in a scratch directory and moved into place last, so a library that exists is complete.
stage="$OUT/.build.$$"
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/lib" "$stage/configs"
# The soname is what pynvml's dlopen("libnvidia-ml.so.1") is matched against once the library is
# loaded; the `nopadding` tag leaves out the ~14 MiB of padding the mock adds by default so its file
# size looks like a real driver's, which tests do not need. The LDFLAGS allowance covers linker
# flags the bridge's own #cgo lines may carry (symbol aliases, soname).
CGO_ENABLED=1 \
CGO_LDFLAGS="${CGO_LDFLAGS:-} -Wl,-soname,libnvidia-ml.so.1" \
CGO_LDFLAGS_ALLOW='-Wl,(--defsym|-soname),.*' \
  go build -trimpath -tags nopadding -buildmode=c-shared -o "$stage/lib/libnvidia-ml.so.1" "$PACKAGE" \
  || fail "go build -buildmode=c-shared $PACKAGE failed (see above)"
rm -f "$stage/lib/"*.h
if command -v nm >/dev/null; then
  exported=$(nm -D --defined-only "$stage/lib/libnvidia-ml.so.1")
  for symbol in nvmlInitWithFlags nvmlDeviceGetCount_v2 nvmlDeviceGetMemoryInfo_v2 nvmlDeviceGetComputeRunningProcesses_v3; do
    grep -qw "$symbol" <<< "$exported" \
      || fail "the built library does not export $symbol: $PACKAGE is not the NVML library this script expects"
  done
fi
cp "$mock/configs/"*.yaml "$stage/configs/"
chmod -R u+w "$stage"  # files from the module cache are read-only

rm -rf "$OUT/configs" "$OUT/lib"
mv "$stage/configs" "$OUT/configs"
{
  echo "module: $MODULE@$MOCKNVML_VERSION"
  echo "package: $PACKAGE (-buildmode=c-shared -tags nopadding)"
  echo "go: $(go env GOVERSION)"
} > "$OUT/BUILD-INFO"
echo "$RECIPE" > "$OUT/RECIPE"
mv "$stage/lib" "$OUT/lib"
say "built in $((SECONDS - started)) s: $LIB and $(ls "$OUT/configs" | wc -l) profiles in $OUT/configs"
echo "$OUT"
