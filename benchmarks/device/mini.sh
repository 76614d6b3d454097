#!/bin/bash
# Minimal device run (little device time left): AMX correctness first, then a few timings.
cd "$(dirname "$0")"; D=$PWD; S=$D/src; P=/tmp/deps
mkdir -p $P; for f in debs/*.deb; do dpkg -x $f $P; done
export LD_LIBRARY_PATH=$P/usr/lib/x86_64-linux-gnu
grep -m1 "model name" /proc/cpuinfo; grep -o 'amx[a-z_0-9]*' /proc/cpuinfo | sort -u | tr '\n' ' '; echo
CM="-DCMAKE_PREFIX_PATH=$P/usr -DCMAKE_INCLUDE_PATH=$P/usr/include -DCMAKE_LIBRARY_PATH=$P/usr/lib/x86_64-linux-gnu"
cmake -S $S -B /tmp/t -DCMAKE_BUILD_TYPE=RelWithDebInfo $CM > /dev/null
timeout 60 make -C /tmp/t -j16 test_ukernels test_dtypes test_precision test_isa_env 2>&1 | grep -E "error|warning:"
timeout 25 bash $D/bench_build.sh $S /tmp/t 2>&1 | tail -1
export FLAT_REQUIRE_ISAS=scalar,avx2,avx512,avx512_bf16,amx_bf16 OMP_WAIT_POLICY=passive
cd /tmp/t
for t in test_ukernels test_dtypes test_precision; do timeout 40 ./tests/$t > $OUT/$t.log 2>&1; echo "$t exit $?"; grep -E "ran:|amx|FAIL|PASSED|q/out bf16 k/v bf16" $OUT/$t.log 2>/dev/null | cut -c1-200 | head -8; done
FLAT_ISA=amx_bf16 FLAT_VERBOSE=1 timeout 10 ./tests/test_isa_env 2>&1 | grep -E "AUTO ->|PASSED|FAIL" | cut -c1-200
B=/tmp/t/flat-bench-precision
{ timeout 12 $B --peaks --threads 16 --only none; timeout 8 $B --peaks --threads 1 --only none
timeout 25 $B --threads 16 --reps 3 --only s4k,llama_2k_causal,spec_decode_4k
timeout 25 $B --threads 16 --reps 3 --precision fp32 --only s4k,llama_2k_causal
timeout 10 $B --threads 1 --reps 3 --only s1k; timeout 10 $B --threads 1 --reps 3 --precision fp32 --only s1k
timeout 10 $B --phases --only s1k,llama_2k_causal; } 2>&1 | tee $OUT/bench.log | cut -c1-260
timeout 30 python3 $D/sdpa.py 16 s4k,llama_2k_causal $S/benchmarks/shapes.csv 2>&1 | tee $OUT/torch.log
