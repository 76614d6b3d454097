#!/bin/bash
# One device run, steps in priority order, each skipped once the call nears
# its limit: build, ctest with amx_bf16 required, the AMX suites, then
# flat-bench-precision (peaks, 16- and 1-thread shapes, phases), PyTorch's
# SDPA on the same shapes, and curve.c (decode and prefill, 1-16 threads).
# FLAT_ISA=amx_bf16 forces bf16 products on every call, so only suites that
# take a table's own bound run under it (not test_threads / test_fork /
# test_engine, whose AUTO calls are held to fp32 bounds).
cd "$(dirname "$0")"; D=$PWD; S=$D/src; P=/tmp/deps; LIMIT=${LIMIT:-560}
step() { echo "=== $(date +%T) t=${SECONDS}s $*"; }
left() { [ $((LIMIT - SECONDS)) -gt ${1:-30} ] || { echo "skip: $SECONDS s used"; return 1; }; }
mkdir -p $P; for f in debs/*.deb; do dpkg -x $f $P; done
export LD_LIBRARY_PATH=$P/usr/lib/x86_64-linux-gnu
( lscpu; grep -o 'amx[a-z_0-9]*' /proc/cpuinfo | sort -u; uname -r; gcc --version | head -1; nproc; free -g ) > $OUT/cpu.txt 2>&1
grep -E "Model name|amx|^[0-9]+$" $OUT/cpu.txt | tr '\n' ' '; echo
CM="-DCMAKE_PREFIX_PATH=$P/usr -DCMAKE_INCLUDE_PATH=$P/usr/include -DCMAKE_LIBRARY_PATH=$P/usr/lib/x86_64-linux-gnu"
step build
{ [ -f /tmp/t/libflat.a ] || cmake -S $S -B /tmp/t -DCMAKE_BUILD_TYPE=RelWithDebInfo $CM > /dev/null; make -C /tmp/t -j16 2>&1 | grep -E "error|warning:"; bash $D/bench_build.sh $S /tmp/t 2>&1 | tail -1
  W=/tmp/t/benchgen; gcc -O2 -std=c11 -fopenmp -D_GNU_SOURCE -I$S/benchmarks -I$S/include -c $S/benchmarks/quant.c -o $W/quant.o && gcc -fopenmp -o /tmp/t/flat-bench-quant $W/quant.o $W/probes.o $W/probe_read.o $W/peak_*.o /tmp/t/libflat.a -lm
  gcc -O2 -std=c11 -fopenmp -D_GNU_SOURCE -I$S/include $S/benchmarks/mixed.c -o /tmp/t/flat-bench-mixed /tmp/t/libflat.a -lm
  gcc -O3 -march=x86-64-v3 -fopenmp -I$S/include $D/curve.c -o /tmp/t/curve /tmp/t/libflat.a -lm; ls /tmp/t/curve /tmp/t/flat-bench-quant /tmp/t/flat-bench-mixed; } > $OUT/build.log 2>&1
tail -5 $OUT/build.log
step ctest
export FLAT_REQUIRE_ISAS=scalar,avx2,avx512,avx512_bf16,amx_bf16,avx512_vnni OMP_WAIT_POLICY=passive
( cd /tmp/t && timeout 150 ctest -j14 --timeout 140 --output-on-failure ) > $OUT/ctest.log 2>&1
grep -E "tests passed|Failed|Timeout|\*\*\*" $OUT/ctest.log | head -20
( cd /tmp/t && for t in test_ukernels test_dtypes test_precision; do ./tests/$t 2>&1 | grep -E "amx|bf16 products|FAIL|PASSED|q/out bf16 k/v bf16"; done; FLAT_ISA=amx_bf16 timeout 60 ctest -R "fuzz|soak|isa_env|plan|paged|rules|quant|invariance" 2>&1 | grep -E "tests passed|Fail" ) > $OUT/amx_tests.log 2>&1
cut -c1-220 $OUT/amx_tests.log | head -40
B=/tmp/t/flat-bench-precision; PRE=bert,s1k,s4k,s4k_causal,llama_2k_causal,gqa_prefill_4k,long16k
left 120 && { step bench
{ $B --peaks --threads 16 --only none; $B --peaks --threads 1 --only none
FLAT_VERBOSE=1 $B --threads 16 --only s1k --reps 1 2>&1 | grep "flat:"
step 16 threads bf16 AUTO; timeout 80 $B --threads 16 --reps 3 --only $PRE,spec_decode_4k
step 16 threads bf16 precision fp32; timeout 60 $B --threads 16 --reps 3 --precision fp32 --only $PRE,spec_decode_4k
step 16 threads avx512_bf16; timeout 30 $B --threads 16 --reps 3 --isa avx512_bf16 --only s1k,llama_2k_causal
step 1 thread; for a in "" "--precision fp32" "--isa avx512_bf16"; do timeout 20 $B --threads 1 --reps 3 $a --only s1k,llama_2k_causal; done
step phases; for a in "" "--precision fp32"; do timeout 20 $B --phases $a --only s1k,llama_2k_causal; done
} > $OUT/bench.log 2>&1; cut -c1-300 $OUT/bench.log; }
left 90 && { step torch; timeout 80 python3 $D/sdpa.py 16 $PRE,spec_decode_4k $S/benchmarks/shapes.csv > $OUT/torch16.log 2>&1; cat $OUT/torch16.log; }
left 60 && { step curve; timeout $((LIMIT - SECONDS - 20)) /tmp/t/curve > $OUT/curve.log 2>&1; cat $OUT/curve.log; }
step end
