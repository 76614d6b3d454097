#!/bin/sh
# ctest exports: libflat.so exports the flat_* API and nothing else.
#   check_exports.sh <nm> <libflat.so>
set -eu
nm=$1 lib=$2
syms=$("$nm" -D --defined-only "$lib" | awk 'NF >= 3 { print $3 }' | sed 's/@.*//' | sort -u)
echo "exported:" $syms
bad=$(printf '%s\n' "$syms" | grep -v '^flat_' || true)
if [ -n "$bad" ]; then
    echo "FAIL: exported symbols outside flat_*:" $bad
    exit 1
fi
missing=
for f in flat_status_string flat_last_error flat_version flat_tensor_bhsd flat_tensor_bshd \
         flat_attention flat_isa_detect flat_isa_name; do
    printf '%s\n' "$syms" | grep -qx "$f" || missing="$missing $f"
done
if [ -n "$missing" ]; then
    echo "FAIL: public API not exported:$missing"
    exit 1
fi
echo "exports: ok (only flat_*; the whole public API)"
