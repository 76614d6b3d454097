#!/bin/bash
# One device run: build, tests (AMX for real), benchmarks. Logs under $OUT.
cd "$(dirname "$0")"; D=$PWD; S=$D/src; P=/tmp/deps
step() { echo "=== $(date +%T) $*"; }
mkdir -p $P; for f in debs/*.deb; do dpkg -x $f $P; done
export LD_LIBRARY_PATH=$P/usr/lib/x86_64-linux-gnu
( lscpu; grep -o 'amx[a-z_0-9]*' /proc/cpuinfo | sort -u; uname -r; gcc --version | head -1 ) > $OUT/cpu.txt 2>&1
grep -E "Model name|amx" $OUT/cpu.txt
CM="-DCMAKE_PREFIX_PATH=$P/usr -DCMAKE_INCLUDE_PATH=$P/usr/include -DCMAKE_LIBRARY_PATH=$P/usr/lib/x86_64-linux-gnu"
{
step build; cmake -S $S -B /tmp/t -DCMAKE_BUILD_TYPE=RelWithDebInfo $CM > /dev/null && make -C /tmp/t -j16 2>&1 | grep -E "error|warning:"
bash $D/bench_build.sh $S /tmp/t 2>&1 | tail -3
step built
} > $OUT/build.log 2>&1
cat $OUT/build.log
export FLAT_REQUIRE_ISAS=scalar,avx2,avx512,avx512_bf16,amx_bf16 OMP_WAIT_POLICY=passive
( cd /tmp/t && timeout 100 ctest -j14 --timeout 95 --output-on-failure ) > $OUT/ctest.log 2>&1
grep -E "tests passed|Failed|Timeout|\*\*\*" $OUT/ctest.log
( cd /tmp/t && for t in test_ukernels test_dtypes test_precision; do ./tests/$t 2>&1 | grep -E "amx|bf16 products|FAIL|PASSED|q/out bf16 k/v bf16"; done; FLAT_ISA=amx_bf16 timeout 30 ctest -R "fuzz|soak|isa_env_amx" 2>&1 | grep -E "tests passed|Fail" ) > $OUT/amx_tests.log 2>&1
cut -c1-200 $OUT/amx_tests.log
B=/tmp/t/flat-bench-precision; PRE=bert,s1k,s4k,s4k_causal,llama_2k_causal,gqa_prefill_4k,long16k
{
step peaks; $B --peaks --threads 16 --only none; $B --peaks --threads 1 --only none
FLAT_VERBOSE=1 $B --threads 16 --only s1k --reps 1 2>&1 | grep "flat:"
step 16 threads bf16 AUTO; $B --threads 16 --reps 3 --only $PRE,spec_decode_4k
step 16 threads bf16 precision fp32; $B --threads 16 --reps 3 --precision fp32 --only $PRE,spec_decode_4k
step 16 threads bf16 avx512_bf16; $B --threads 16 --reps 3 --isa avx512_bf16 --only s1k,llama_2k_causal
step 1 thread; for a in "" "--precision fp32" "--isa avx512_bf16"; do $B --threads 1 --reps 3 $a --only s1k; done
step phases; for a in "" "--precision fp32"; do $B --phases $a --only s1k,llama_2k_causal; done
} > $OUT/bench.log 2>&1
cut -c1-300 $OUT/bench.log
step torch; timeout 70 python3 $D/sdpa.py 16 $PRE,spec_decode_4k $S/benchmarks/shapes.csv > $OUT/torch16.log 2>&1; cat $OUT/torch16.log
step end
