#!/bin/sh
# ctest shapes_in_sync: benchmarks/shapes.csv is a copy of the project's shared
# shape set ../shared/bench/shapes.csv (relative to the source dir). Outside the
# development tree (no ../shared) there is nothing to compare.
#   shapes_in_sync.sh <source dir>
set -eu
src=$1
shared="$src/../shared/bench/shapes.csv"
ours="$src/benchmarks/shapes.csv"
if [ ! -f "$shared" ]; then
    echo "note: $shared is absent (a clone outside the development tree): nothing to compare"
    exit 0
fi
if [ ! -f "$ours" ]; then
    echo "FAIL: $ours is missing (it must be a copy of $shared)"
    exit 1
fi
if cmp -s "$shared" "$ours"; then
    echo "shapes_in_sync: $ours == $shared ($(grep -vc '^#' "$ours") shapes)"
    exit 0
fi
echo "FAIL: $ours differs from $shared:"
diff -u "$shared" "$ours" || true
exit 1
