#!/usr/bin/env bash
# Adapts the Kubernetes 1.20 tree (its vendored libraries) to the Go 1.19 Debian builds it with.
# Usage: patch-k8s-go119.sh SOURCE_TREE. Idempotent. Two incompatibilities, both found by the e2e
# tests:
#
# 1. github.com/modern-go/reflect2 v1.0.1: since Go 1.18 the runtime's
#    reflect.mapiterinit(type, map, iterator) fills an iterator the caller allocates (every field
#    of it) instead of returning one. Unpatched, kube-apiserver dies with SIGSEGV the first time it
#    encodes a custom resource.
# 2. The OpenAPI type validator (kube-openapi and go-openapi copies) treats a value as null when
#    reflect.DeepEqual(reflect.Zero(T), reflect.ValueOf(v)) holds. That compared two different
#    internal pointers, so it meant "v is nil", until Go 1.19 began to share one zero buffer:
#    now an empty string counts as null and a custom resource with `reason: ""` is refused.
set -euo pipefail
src="$1"

for validator in "$src/vendor/k8s.io/kube-openapi/pkg/validation/validate/type.go" \
                 "$src/vendor/github.com/go-openapi/validate/type.go"; do
  [ -f "$validator" ] || continue
  perl -pi -e 's/if data == nil \|\| reflect\.DeepEqual\(reflect\.Zero\(reflect\.TypeOf\(data\)\), reflect\.ValueOf\(data\)\) \{/if data == nil {/' "$validator"
  grep -q 'reflect.DeepEqual(reflect.Zero(reflect.TypeOf(data))' "$validator" && {
    echo "patch-k8s-go119: $validator did not take the patch" >&2; exit 1; }
done

dir="$src/vendor/github.com/modern-go/reflect2"
link="$dir/unsafe_link.go"
map="$dir/unsafe_map.go"
grep -q 'm unsafe.Pointer, it \*hiter)' "$link" && exit 0

# 1. The declaration takes the iterator to fill.
perl -0pi -e 's/func mapiterinit\(rtype unsafe\.Pointer, m unsafe\.Pointer\) \*hiter/func mapiterinit(rtype unsafe.Pointer, m unsafe.Pointer, it *hiter)/' "$link"
# 2. The iterator has the runtime's full layout (Go 1.18-1.21), so the runtime's writes stay inside it.
perl -0pi -e 's/type hiter struct \{.*?\n\}/type hiter struct {
\tkey         unsafe.Pointer
\tvalue       unsafe.Pointer
\tt           unsafe.Pointer
\th           unsafe.Pointer
\tbuckets     unsafe.Pointer
\tbptr        unsafe.Pointer
\toverflow    unsafe.Pointer
\toldoverflow unsafe.Pointer
\tstartBucket uintptr
\toffset      uint8
\twrapped     bool
\tB           uint8
\ti           uint8
\tbucket      uintptr
\tcheckBucket uintptr
}/s' "$link"
# 3. The one caller allocates the iterator and passes it in.
perl -0pi -e 's/\treturn &UnsafeMapIterator\{\n\t\thiter:      mapiterinit\(type2\.rtype, \*\(\*unsafe\.Pointer\)\(obj\)\),/\tit := new(hiter)\n\tmapiterinit(type2.rtype, *(*unsafe.Pointer)(obj), it)\n\treturn &UnsafeMapIterator{\n\t\thiter:      it,/' "$map"

grep -q 'mapiterinit(type2.rtype, \*(\*unsafe.Pointer)(obj), it)' "$map" || {
  echo "patch-reflect2: unsafe_map.go did not take the patch" >&2; exit 1; }
grep -q 'checkBucket uintptr' "$link" || { echo "patch-reflect2: hiter not replaced" >&2; exit 1; }
