#!/bin/bash
# Device run for int8 products (avx512_vnni; the Xeon has AVX512_VNNI): the
# build, ctest with every x86 table required, the quantized suites' int8
# lines, flat-bench-quant's decode table at 1, 4 and 16 threads, and
# curve.c (decode per cache type, i8p = FLAT_PRECISION_INT8, 1-16 threads).
# Logs under $OUT; LIMIT seconds in all.
cd "$(dirname "$0")"; D=$PWD; S=$D/src; P=/tmp/deps; LIMIT=${LIMIT:-540}
step() { echo "=== $(date +%T) t=${SECONDS}s $*"; }
left() { [ $((LIMIT - SECONDS)) -gt ${1:-30} ] || { echo "skip: $SECONDS s used"; return 1; }; }
mkdir -p $P; for f in debs/*.deb; do dpkg -x $f $P; done
export LD_LIBRARY_PATH=$P/usr/lib/x86_64-linux-gnu
grep -m1 "model name" /proc/cpuinfo; nproc
CM="-DCMAKE_PREFIX_PATH=$P/usr -DCMAKE_INCLUDE_PATH=$P/usr/include -DCMAKE_LIBRARY_PATH=$P/usr/lib/x86_64-linux-gnu"
step build
{ cmake -S $S -B /tmp/t -DCMAKE_BUILD_TYPE=RelWithDebInfo $CM > /dev/null; make -C /tmp/t -j16 2>&1 | grep -E "error|warning:"; bash $D/bench_build.sh $S /tmp/t 2>&1 | tail -1
  W=/tmp/t/benchgen; gcc -O2 -std=c11 -fopenmp -D_GNU_SOURCE -I$S/benchmarks -I$S/include -c $S/benchmarks/quant.c -o $W/quant.o && gcc -fopenmp -o /tmp/t/flat-bench-quant $W/quant.o $W/probes.o $W/probe_read.o $W/peak_*.o /tmp/t/libflat.a -lm
  gcc -O2 -std=c11 -fopenmp -D_GNU_SOURCE -I$S/include $D/curve.c -o /tmp/t/curve /tmp/t/libflat.a -lm; } > $OUT/build.log 2>&1
tail -3 $OUT/build.log
step ctest
export FLAT_REQUIRE_ISAS=scalar,avx2,avx512,avx512_bf16,amx_bf16,avx512_vnni OMP_WAIT_POLICY=passive
( cd /tmp/t && timeout 150 ctest -j14 --timeout 140 --output-on-failure ) > $OUT/ctest.log 2>&1
grep -E "tests passed|Failed|Timeout|\*\*\*" $OUT/ctest.log | head -20
( cd /tmp/t && ./tests/test_quant_accuracy 2>&1 | grep -E "vnni|FAIL|PASSED"; ./tests/test_quant 2>&1 | grep -E "calls|FAIL"; ./tests/test_quant_paged 2>&1 | grep -E "calls|FAIL"; ./tests/test_precision 2>&1 | grep -E "int8|FAIL" ) > $OUT/int8_tests.log 2>&1
cut -c1-260 $OUT/int8_tests.log | head -20
left 120 && { step quant decode; timeout 200 /tmp/t/flat-bench-quant --only decode 5 1 2 4 16 > $OUT/quant.log 2>&1; grep -E "bf16 \||int8 products|probe" $OUT/quant.log; }
left 60 && { step curve; timeout $((LIMIT - SECONDS - 10)) /tmp/t/curve > $OUT/curve.log 2>&1; cat $OUT/curve.log; }
step end
