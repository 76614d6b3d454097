#!/bin/bash
# flat-bench-precision without Google Benchmark / OpenBLAS: the probes and the
# program compiled by hand against a built libflat.a. $1 source, $2 build dir.
set -e
S=$1; B=$2; W=$B/benchgen; mkdir -p $W
A512="-mavx512f -mavx512bw -mavx512vl -mavx512dq -mfma -mavx2"
declare -A FL=([baseline]="" [avx2]="-mavx2 -mfma -mf16c" [avx512]="$A512" [avx512_bf16]="$A512 -mavx512bf16" [amx_bf16]="$A512 -mavx512bf16 -mamx-tile -mamx-bf16 ${AMXEXTRA}" [avx512_vnni]="$A512 -mavx512vnni")
objs=""; defs=""
for v in baseline avx2 avx512 avx512_bf16 amx_bf16 avx512_vnni; do
  V=${v^^}
  printf '#define PEAK_FMA_%s 1\n#include "peak_fma.c"\n' $V > $W/peak_$v.c
  gcc -O2 -std=c11 -D_GNU_SOURCE -I$S/benchmarks -I$S/include ${FL[$v]} -c $W/peak_$v.c -o $W/peak_$v.o
  objs="$objs $W/peak_$v.o"; defs="$defs -DPEAK_HAVE_$V=1"
done
gcc -O3 -std=c11 -D_GNU_SOURCE -I$S/include -c $S/benchmarks/probe_read.c -o $W/probe_read.o
for f in probes shapes precision; do
  gcc -O2 -std=c11 -fopenmp -D_GNU_SOURCE $defs -DBENCH_SHAPES_CSV="\"$S/benchmarks/shapes.csv\"" \
      -I$S/benchmarks -I$S/include -I$S/kernels -I$S/runtime -c $S/benchmarks/$f.c -o $W/$f.o
done
gcc -fopenmp -o $B/flat-bench-precision $W/precision.o $W/probes.o $W/shapes.o $W/probe_read.o $objs $B/libflat.a -lm
echo built $B/flat-bench-precision
