#!/usr/bin/env bash
# Adapts a vendored github.com/modern-go/reflect2 v1.0.1 to Go >= 1.18, where the runtime's
# reflect.mapiterinit(type, map, iterator) writes into an iterator the caller allocates (whole:
# the runtime fills every field) instead of returning a new one. Idempotent.
set -euo pipefail
dir="$1"
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
