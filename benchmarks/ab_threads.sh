#!/usr/bin/env bash
# The OpenMP build against the -DFLAT_OPENMP=OFF build (flat's own pthread
# pool): flat_attention on every shape of a shapes file at 1 and 2 threads.
# One binary (ab-threads) runs alternately on each build's libflat.so, in
# separate processes, ROUNDS times (the order flipping each round), so
# drift on a shared machine hits both alike; it prints each side's median
# over the rounds and OFF/ON.
#
#   benchmarks/ab_threads.sh [shapes.csv] [rounds]     (default shapes.csv, 5)
# Builds build/ab-on and build/ab-off (Release) unless they exist.
set -euo pipefail
cd "$(dirname "$0")/.."
shapes=${1:-benchmarks/shapes.csv}
rounds=${2:-5}
jobs=${FLAT_JOBS:-2}
for side in on off; do
    dir=build/ab-$side
    if [ ! -f "$dir/libflat.so" ]; then
        opt=ON
        [ $side = off ] && opt=OFF
        cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=Release -DFLAT_BUILD_TESTS=OFF \
            -DFLAT_OPENMP=$opt >"$dir.log" 2>&1
        cmake --build "$dir" -j "$jobs" --target flat >>"$dir.log" 2>&1
    fi
done
echo "ldd build/ab-off/libflat.so:"
ldd build/ab-off/libflat.so | sed 's/^/  /'
cc -O2 -std=c11 -D_POSIX_C_SOURCE=200809L -Iinclude benchmarks/ab_threads.c \
    -Lbuild/ab-on -lflat -o build/ab-threads
out=$(mktemp)
for threads in 1 2; do
    for r in $(seq 1 "$rounds"); do
        order="on off"
        [ $((r % 2)) = 0 ] && order="off on"
        for side in $order; do
            LD_LIBRARY_PATH=build/ab-$side build/ab-threads "$shapes" "$threads" 15 |
                sed "s/^/$side /" >>"$out"
        done
    done
done
echo "median ms over $rounds rounds (each round: the median of up to 15 calls)"
printf '%-18s %7s %10s %10s %8s\n' shape threads openmp pool off/on
awk '{ key = $2 " " $3; v[$1 " " key] = v[$1 " " key] " " $4; if (!(key in first)) first[key] = NR }
     function median(s,   a, n, i, j, t) {
         n = split(s, a, " ")
         for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
         return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
     }
     END { for (k in first) { split(k, p, " "); on = median(v["on " k]); off = median(v["off " k])
           printf "%d %-18s %7s %10.3f %10.3f %8.3f\n", first[k], p[1], p[2], on, off, off / on } }' "$out" |
    sort -n | cut -d" " -f2-
rm -f "$out"
