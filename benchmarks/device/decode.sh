#!/bin/bash
# Device run: the whole ctest (AUTO takes amx_bf16 for all-bf16 calls), the
# suites that accept FLAT_ISA=amx_bf16 (quantized caches on tiles too), then
# flat-bench-quant's decode table at 1 and 16 threads, spec_decode_4k per
# table and flat-bench-mixed. Logs under $OUT; LIMIT seconds in all.
cd "$(dirname "$0")"; D=$PWD; S=$D/src; P=/tmp/deps; LIMIT=${LIMIT:-540}
step() { echo "=== $(date +%T) t=${SECONDS}s $*"; }
left() { [ $((LIMIT - SECONDS)) -gt ${1:-30} ] || { echo "skip: $SECONDS s used"; return 1; }; }
mkdir -p $P; for f in debs/*.deb; do dpkg -x $f $P; done
export LD_LIBRARY_PATH=$P/usr/lib/x86_64-linux-gnu
grep -m1 "model name" /proc/cpuinfo
CM="-DCMAKE_PREFIX_PATH=$P/usr -DCMAKE_INCLUDE_PATH=$P/usr/include -DCMAKE_LIBRARY_PATH=$P/usr/lib/x86_64-linux-gnu"
step build
{ cmake -S $S -B /tmp/t -DCMAKE_BUILD_TYPE=RelWithDebInfo $CM > /dev/null; make -C /tmp/t -j16 2>&1 | grep -E "error|warning:"; bash $D/bench_build.sh $S /tmp/t 2>&1 | tail -1
  W=/tmp/t/benchgen; gcc -O2 -std=c11 -fopenmp -D_GNU_SOURCE -I$S/benchmarks -I$S/include -c $S/benchmarks/quant.c -o $W/quant.o && gcc -fopenmp -o /tmp/t/flat-bench-quant $W/quant.o $W/probes.o $W/probe_read.o $W/peak_*.o /tmp/t/libflat.a -lm
  gcc -O2 -std=c11 -fopenmp -D_GNU_SOURCE -I$S/include $S/benchmarks/mixed.c -o /tmp/t/flat-bench-mixed /tmp/t/libflat.a -lm; } > $OUT/build.log 2>&1
tail -3 $OUT/build.log
step ctest
export FLAT_REQUIRE_ISAS=scalar,avx2,avx512,avx512_bf16,amx_bf16,avx512_vnni OMP_WAIT_POLICY=passive
( cd /tmp/t && timeout 150 ctest -j14 --timeout 140 --output-on-failure ) > $OUT/ctest.log 2>&1
grep -E "tests passed|Failed|Timeout|\*\*\*" $OUT/ctest.log | head -20
( cd /tmp/t && ./tests/test_precision 2>&1 | grep -E "auto|FAIL|PASSED"; ./tests/test_quant_accuracy 2>&1 | grep -E "amx|FAIL|PASSED"; ./tests/test_quant_paged 2>&1 | grep -E "calls|FAIL|PASSED"
  FLAT_ISA=amx_bf16 timeout 90 ctest -j8 -R "fuzz|soak|isa_env|plan|paged|rules|quant|invariance|mask16|extreme" --output-on-failure 2>&1 | grep -E "tests passed|Fail|ERROR" ) > $OUT/amx_tests.log 2>&1
cut -c1-220 $OUT/amx_tests.log | head -40
left 120 && { step quant decode; timeout 150 /tmp/t/flat-bench-quant --only decode 5 1 16 > $OUT/quant.log 2>&1; cat $OUT/quant.log; }
left 60 && { step spec decode; B=/tmp/t/flat-bench-precision; { FLAT_VERBOSE=1 timeout 10 $B --threads 16 --only spec_decode_4k --reps 1 2>&1 | grep "flat:" | head -2 | cut -c1-400
  for th in 16 1; do timeout 20 $B --threads $th --reps 5 --only spec_decode_4k; timeout 20 $B --threads $th --reps 5 --precision fp32 --only spec_decode_4k; done; } > $OUT/spec.log 2>&1; cut -c1-300 $OUT/spec.log; }
left 60 && { step mixed; for th in 16 1; do timeout 60 /tmp/t/flat-bench-mixed --threads $th --rounds 7; done > $OUT/mixed.log 2>&1; cat $OUT/mixed.log; }
step end
