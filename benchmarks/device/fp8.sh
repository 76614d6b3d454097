#!/bin/bash
# fp8 and int4 decode with fp32 products before and after their faster widening:
# .dev/old holds the baseline source (git archive 8c30a1a | tar -x -C .dev/old),
# .dev/src this checkout (as README.md says); ctest of .dev/src with every x86
# table required, then flat-bench-quant --only decode 3 1 16 for old and new,
# alternated twice. Logs under $OUT; about 7 minutes.
cd "$(dirname "$0")"; D=$PWD; P=/tmp/deps
mkdir -p $P; for f in debs/*.deb; do dpkg -x $f $P; done
export LD_LIBRARY_PATH=$P/usr/lib/x86_64-linux-gnu OMP_WAIT_POLICY=passive
grep -m1 "model name" /proc/cpuinfo; nproc
CM="-DCMAKE_PREFIX_PATH=$P/usr -DCMAKE_INCLUDE_PATH=$P/usr/include -DCMAKE_LIBRARY_PATH=$P/usr/lib/x86_64-linux-gnu"
bq() { # src build
  cmake -S $1 -B $2 -DCMAKE_BUILD_TYPE=RelWithDebInfo $CM > /dev/null; make -C $2 -j16 2>&1 | grep -E "error|warning:"; bash $D/bench_build.sh $1 $2 2>&1 | tail -1
  W=$2/benchgen; gcc -O2 -std=c11 -fopenmp -D_GNU_SOURCE -I$1/benchmarks -I$1/include -c $1/benchmarks/quant.c -o $W/quant.o && gcc -fopenmp -o $2/flat-bench-quant $W/quant.o $W/probes.o $W/probe_read.o $W/peak_*.o $2/libflat.a -lm; }
echo "=== build t=$SECONDS"; bq $D/src /tmp/new > $OUT/build_new.log 2>&1; tail -2 $OUT/build_new.log
echo "=== ctest t=$SECONDS"
export FLAT_REQUIRE_ISAS=scalar,avx2,avx512,avx512_bf16,amx_bf16,avx512_vnni
( cd /tmp/new && timeout 150 ctest -j14 --timeout 140 --output-on-failure ) > $OUT/ctest.log 2>&1
grep -E "tests passed|Failed|Timeout|\*\*\*" $OUT/ctest.log | head -20
echo "=== build old t=$SECONDS"; bq $D/old /tmp/old > $OUT/build_old.log 2>&1; tail -2 $OUT/build_old.log
for r in 1 2; do for v in old new; do
  echo "=== $v rep $r t=$SECONDS"; timeout 100 /tmp/$v/flat-bench-quant --only decode 3 1 16 > $OUT/quant_${v}_$r.log 2>&1
  grep -E "\| (bf16|fp8 per-tensor|i8 g32 f16-scale|i4 k-chan v-g32) \||probe" $OUT/quant_${v}_$r.log
done; done
echo "=== end t=$SECONDS"
