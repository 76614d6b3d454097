#!/usr/bin/env bash
# flat benchmarks, from a fresh Debian 12 machine to a results table.
#
#   benchmarks/run.sh           full suite on benchmarks/shapes.csv and the q_len sweep of
#                               benchmarks/qsweep.csv (< 10 min on 2 cores), then refreshes
#                               benchmarks/RESULTS.md and benchmarks/plots/*.png
#   benchmarks/run.sh --quick   CI smoke run (< 1 min): small shapes and sweep points, one
#                               repetition, every kernel table; writes only under build/bench/quick
#
# Installs the Debian packages it needs when run as root (prints the apt-get
# line and stops otherwise), builds in build/bench (Release), runs the Google
# Benchmark suite (JSON in build/bench/.../results.json), the peak-memory sweep,
# and gnuplot (GFLOP/s, roofline and memory plots). Needs no terminal: works under CI=true with stdin closed.
# Fails (exit 1) with one line saying why when no case ran, or when a shape of
# the set has no timed row in the summary. The LLC the buffers are sized from
# is what sysfs/CPUID report (FLAT_CACHE_SIZES=L1D,L2,L3 forces a claim), and
# every such buffer is bounded, so a misreported LLC cannot stretch setup.
# FLAT_BENCH_BUILD_DIR moves build/bench elsewhere; FLAT_BENCH_SUITE_FLAGS adds flags to the
# suite's command line (e.g. "--flat_time_budget=1" to see what a starved run reports).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
build="${FLAT_BENCH_BUILD_DIR:-$repo/build/bench}"  # override: FLAT_BENCH_BUILD_DIR
packages=(cmake gcc g++ make pkg-config libbenchmark-dev libopenblas-dev gnuplot-nox
          libsleef-dev libcmocka-dev)

usage() {  # the comment block at the top of this file
    awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"
}

quick=0
for arg in "$@"; do
    case "$arg" in
        --quick) quick=1 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "run.sh: unknown argument: $arg" >&2; usage >&2; exit 2 ;;
    esac
done

log() { printf '\n== %s\n' "$*"; }

missing_packages() {
    local p
    for p in "${packages[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' \
            || echo "$p"
    done
}

ensure_packages() {
    if ! command -v dpkg-query >/dev/null; then
        echo "run.sh: not a Debian system; make sure these are installed: ${packages[*]}"
        return
    fi
    local missing
    missing=$(missing_packages | xargs)
    [ -z "$missing" ] && return
    if [ "$(id -u)" -ne 0 ]; then
        echo "run.sh: missing Debian packages. Install them with:" >&2
        echo "  sudo apt-get install -y $missing" >&2
        exit 1
    fi
    log "installing $missing"
    export DEBIAN_FRONTEND=noninteractive
    # An image without package lists (a fresh container) cannot install anything.
    if ! apt-get install -y --no-install-recommends $missing </dev/null; then
        apt-get update </dev/null
        apt-get install -y --no-install-recommends $missing </dev/null
    fi
}

build_suite() {
    log "building in $build"
    cmake -S "$repo" -B "$build" -DCMAKE_BUILD_TYPE=Release \
          -DFLAT_BUILD_BENCHMARKS=ON -DFLAT_BUILD_TESTS=OFF >/dev/null
    cmake --build "$build" -j "$(nproc)" --target flat_benchmarks flat-bench flat-bench-memory \
        flat-bench-engine flat-bench-extreme flat-bench-invariance flat-bench-mixed \
        flat-bench-quant >/dev/null
}

# Some machines set OPENBLAS_CORETYPE (and OPENBLAS_L2_SIZE) on purpose: older
# OpenBLAS builds compute wrong results or crash on their processor without
# them. So --quick, which the test command runs, keeps both as they are. Only
# the full run, whose baseline should use the kernels OpenBLAS picks for this
# CPU, drops them, both together; the summary's header then names the core it
# ran ("baseline: OpenBLAS <openblas_get_corename()> kernels").
# FLAT_BENCH_OPENBLAS_CORETYPE pins a core on purpose (and keeps OPENBLAS_L2_SIZE).
choose_openblas_core() {
    if [ -n "${FLAT_BENCH_OPENBLAS_CORETYPE:-}" ]; then
        export OPENBLAS_CORETYPE="$FLAT_BENCH_OPENBLAS_CORETYPE"
    elif [ "$quick" = 0 ] && [ -n "${OPENBLAS_CORETYPE:-}${OPENBLAS_L2_SIZE:-}" ]; then
        echo "run.sh: full run: dropping OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-} and" \
             "OPENBLAS_L2_SIZE=${OPENBLAS_L2_SIZE:-} so that the baseline runs the core OpenBLAS" \
             "picks; the summary names it (FLAT_BENCH_OPENBLAS_CORETYPE=<core> keeps a pin)"
        unset OPENBLAS_CORETYPE OPENBLAS_L2_SIZE
    fi
}

# The best kernel table is the first one the suite lists (tables go best-first).
best_isa() {
    "$build/benchmarks/flat_benchmarks" --flat_shapes="$shapes" --benchmark_list_tests=true \
        | awk -F/ '$1 == "flat" && isa == "" { isa = $3 } END { print isa }'
}

run_suite() {
    local isa filter
    isa=$(best_isa)
    if [ "$quick" = 1 ]; then
        filter='.'  # everything: the point is to exercise every code path
        suite_flags=(--benchmark_min_time=0.01 --flat_time_budget=25)
    else
        # Every dataflow of the best table and the baseline (they run first),
        # then the sweep (AUTO on the best table); the other tables with AUTO
        # only, and not where the previous shape's speed predicts calls over
        # 4 s (the scalar table on long shapes); every micro-kernel.
        filter="^(flat/[^/]+/$isa/|flat/[^/]+/[^/]+/AUTO/|openblas/|ukernel/)"
        suite_flags=(--benchmark_min_time=0.2 --benchmark_repetitions=3
                     --benchmark_display_aggregates_only=true
                     --flat_max_call_seconds=4 --flat_time_budget=420)
    fi
    log "suite: $shapes and $qsweep, filter $filter"
    echo "note: Google Benchmark's '***WARNING*** Library was built as DEBUG' is about its own" \
         "library (Debian builds libbenchmark so); flat and the benchmarks are built Release" \
         "(-O2 -DNDEBUG)"
    "$build/benchmarks/flat_benchmarks" --flat_shapes="$shapes" --flat_qsweep="$qsweep" \
        --flat_summary_dir="$out" \
        --benchmark_filter="$filter" --benchmark_out="$out/results.json" \
        --benchmark_out_format=json "${suite_flags[@]}" ${FLAT_BENCH_SUITE_FLAGS:-} </dev/null
}

run_memory() {
    log "peak memory, fused vs unfused"
    local flags=(--dat "$out/memory.dat" --markdown "$out/memory.md" --threads "$(nproc)")
    if [ "$quick" = 1 ]; then
        flags+=(--max-len 4096 --full-rows-up-to 2048 --query-rows 256)
    fi
    "$build/benchmarks/flat-bench-memory" "${flags[@]}" </dev/null
}

# The engine path's lines (paged decode, plan overheads, score rules, element
# types): flat-bench-engine, a plain C program over the public API.
run_engine() {
    log "engine path: paged decode, plans, score rules, element types"
    local flags=(--threads "$(nproc)")
    [ "$quick" = 1 ] && flags+=(--quick)
    "$build/benchmarks/flat-bench-engine" "${flags[@]}" </dev/null | tee "$out/engine.md"
}

# Extreme inputs (subnormals, logits near overflow, equal rows, one visible
# key of 2^20) against ordinary ones of the same shape.
run_extreme() {
    log "extreme inputs vs ordinary ones"
    local flags=(--threads "$(nproc)")
    [ "$quick" = 1 ] && flags+=(--quick)
    "$build/benchmarks/flat-bench-extreme" "${flags[@]}" </dev/null | tee "$out/extreme.md"
}

# FLAT_FLAG_BATCH_INVARIANT's cost per shape at 1 and 2 threads (interleaved
# pairs with and without the flag).
run_invariance() {
    log "batch invariance: the flag's cost per shape"
    local flags=(--shapes "$shapes")
    [ "$quick" = 1 ] && flags+=(--quick)
    "$build/benchmarks/flat-bench-invariance" "${flags[@]}" </dev/null | tee "$out/invariance.md"
}

# A server step (8 decodes + a 64-query prefill chunk, bf16 pages of 16) as
# one ragged call against its parts called apart, at 1 and 2 threads.
run_mixed() {
    log "mixed step: decodes + a prefill chunk in one call vs apart"
    local flags=()
    [ "$quick" = 1 ] && flags+=(--quick)
    "$build/benchmarks/flat-bench-mixed" "${flags[@]}" </dev/null | tee "$out/mixed.md"
}

# Decode on quantized caches (issue 23): f32, bf16, int8, fp8, int4 and int8
# with int8 products (FLAT_PRECISION_INT8), interleaved, 1 and 2 threads.
run_quant() {
    log "quantized K/V caches: decode per cache type"
    local reps=7
    [ "$quick" = 1 ] && reps=1
    "$build/benchmarks/flat-bench-quant" --only decode "$reps" 1 2 </dev/null | tee "$out/quant.md"
}

machine() {
    local model
    model=$(lscpu | sed -n 's/^Model name: *//p' | head -1)
    echo "$model, $(nproc) cores"
}

# The thread counts of a .dat file's blocks ("1 2"; the suite writes a block
# only for a thread count whose cases ran), and its kernel table.
dat_threads() { [ -f "$1" ] && sed -n 's/^# threads=\([0-9]*\).*/\1/p' "$1" | xargs; }
dat_isa() { sed -n 's/^# threads=[0-9]* isa=\([^ ]*\).*/\1/p' "$1" | head -1; }

# Why the suite's cases did not run: the most frequent reason its summary
# gives ("skipped: suite time budget ..."), or what else is known.
skip_reason() {
    local md="$out/summary.md"
    if [ ! -s "$md" ]; then
        echo "the suite wrote no summary (exit $suite_status; see its output above)"
        return
    fi
    local why
    why=$(sed -n 's/^- [^ ]*: //p' "$md" | sort | uniq -c | sort -rn | head -1 | sed 's/^ *[0-9]* //')
    echo "${why:-no case reported a time}"
}

# Nothing timed: one line that says why, before any plot is attempted.
require_some_results() {
    if [ -z "$(dat_threads "$out/gflops.dat")" ]; then
        echo "run.sh: FAILED: no benchmark case ran: $(skip_reason)" >&2
        exit 1
    fi
}

# Every shape of the set has a table row with a time (AUTO ms, column 8 of the
# summary's markdown): a run that lost shapes fails for that reason.
check_numbers() {
    local md="$out/summary.md" name missing=()
    for name in $(grep -v '^#' "$shapes" | cut -d, -f1); do
        awk -F'|' -v n="$name" '{ gsub(/ /, "", $2); gsub(/ /, "", $8) }
                                $2 == n && $8 ~ /^[0-9]+[.][0-9]+$/ { found = 1 }
                                END { exit !found }' "$md" || missing+=("$name")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        echo "run.sh: FAILED: no timed row in the summary for ${#missing[@]} shape(s) of" \
             "$(basename "$shapes"): ${missing[*]}: $(skip_reason)" >&2
        return 1
    fi
    echo "run.sh: every shape of $(basename "$shapes") has a timed row in the summary"
}

plot() {
    log "plots in $plots"
    mkdir -p "$plots"
    local dat threads
    for dat in gflops roofline; do
        threads=$(dat_threads "$out/$dat.dat")
        if [ -z "$threads" ]; then
            echo "run.sh: no $dat plot: none of its cases ran ($(skip_reason))"
            continue
        fi
        gnuplot -e "data='$out/$dat.dat'; out='$plots/$dat.png'; threads='$threads';
                    isa='$(dat_isa "$out/$dat.dat")'; machine='$(machine)'" "$here/plot_$dat.gp"
    done
    gnuplot -e "data='$out/memory.dat'; out='$plots/memory.png'; budget_mib=8192;
                machine='$(machine)'" "$here/plot_memory.gp"
}

# How the figures of RESULTS.md are made (static text; the numbers in it are
# from a one-off cross-check that this script does not repeat).
method_md() {
    cat <<'EOF_METHOD'
## Method

- **FLOPs**: 4·B·Hq·D per visible query-key pair, as the header of `shapes.csv` counts
  them: all Nq·Nk pairs without a mask; causal with Nq = Nk, half of them (the
  FlashAttention papers' convention); causal with Nq < Nk (bottom-right aligned), row i
  sees Nk − Nq + 1 + i keys. One function (`shape_flops`, benchmarks/shapes.c) serves
  every figure.
- **Bytes**: K and V read once, each kv head's once, at the K/V element size (4 bytes
  for f32, 2 for f16 and bf16): B·Hkv·Nk·2D·size. Every timed call starts with K and V
  out of the last-level cache: where K+V is below 4× the LLC, the suite rotates through
  enough identical copies of them to span 4× the LLC (bounded to 64–256 MiB whatever
  size the system reports, so a VM that reports its host's L3 cannot stretch setup;
  the summary's header says which size was used), one copy per call.
- **Variants** of the decode-like shapes (`<shape>+kv_f16`, `+kv_bf16`, `+bf16` for
  q, out, K and V in bf16, `+paged16` for K/V in head-major pages of 16 tokens in
  scrambled order through `flat_attention_paged`): AUTO on the best kernel table, their
  outputs checked against the reference on the same rounded inputs (bf16 and f16
  outputs to their own bounds). `flat-bench --dtype q=bf16,kv=f16 --page 16 --json`
  times one such call.
- **Ceilings**, measured in the same process before the cases that need them, per
  thread count:
  - FP32 FMA peak of the kernel table's ISA: independent FMA chains (`peak_fma.c`),
    median of 7 runs.
  - Read bandwidth: a vectorised sum (`probe_read.c`, AVX-512/AVX2/SSE2 clone picked
    at run time) over 8× the LLC within 1–2 GiB, each thread summing its own part as
    two streams, best of 9 passes. Decode reads K and V and writes almost nothing, so
    this, not the triad, is its ceiling.
  - STREAM triad (`probes.c`, STREAM's 12 bytes per element), quoted for comparison
    only: built with the project's portable flags and reported as a median of 7, it
    reads about a quarter below the best triad of a STREAM build for this CPU.
  - Cross-check of the read probe against an independent STREAM-style program
    (`-O3 -march=native -fopenmp`, a sum over two 512 MiB arrays, best of 10; not
    part of the repository), five rounds back to back with the suite's probes, no
    other job of ours running (2026-12-01). 1 thread: STREAM-style read 41.0–42.7
    GB/s, read probe 40.0–41.3 GB/s (STREAM triad 39.3–41.2, in-process triad
    28.4–30.2). 2 threads: STREAM-style read 48.5–82.2 GB/s, read probe 49.1–79.9
    GB/s (triads 48.7–77.9 and 38.3–59.9); the low ends are rounds in which something else
    (other processes here, or the host's other guests) loaded the memory, and both
    programs dipped together. The
    ceilings of a run are that run's measurements.
- **% peak**: GFLOP/s over the FMA peak. **FLOP/B**: FLOPs over the K+V bytes.
  **% roof**: GFLOP/s over the attainable min(FMA peak, FLOP/B × read bandwidth), the
  roofline at the same thread count. **KV GB/s** and **% BW** (decode-like shapes, at
  most 16 query rows): K+V bytes per second, and that over the read bandwidth.
- **q_len sweep** (`qsweep.csv`): one GQA layer (32 q heads / 8 kv heads, D 128) against
  a 4096-token cache, causal, q_len 1 to 128, AUTO on the best kernel table; the points
  walk from the bandwidth slope towards the FMA peak. Filter: `flat/qsweep_`.
EOF_METHOD
}

write_results_md() {
    local md="$here/RESULTS.md"
    {
        echo "# Benchmark results"
        echo
        echo "Latest full run of \`benchmarks/run.sh\` ($(date -u '+%Y-%m-%d %H:%M UTC'), commit" \
             "$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown))."
        echo "Machine: $(machine); L2 cache $(lscpu | sed -n 's/^L2 cache: *//p')," \
             "L3 cache $(lscpu | sed -n 's/^L3 cache: *//p');" \
             "$(free -g | awk '/^Mem:/ {print $2}') GiB RAM; $(. /etc/os-release && echo "$PRETTY_NAME")."
        echo "Suite wall time: ${suite_seconds} s; the table is regenerated by every full run."
        echo
        echo "Reproduce: \`benchmarks/run.sh\` (this page), \`benchmarks/run.sh --quick\` (smoke)," \
             "one shape: \`build/bench/benchmarks/flat-bench --q-len 4096 --heads 16 --causal\`," \
             "one case: \`build/bench/benchmarks/flat_benchmarks --benchmark_filter=flat/s4k/\`."
        echo
        method_md
        echo
        echo "## Speed"
        echo
        cat "$out/summary.md"
        echo
        echo "![GFLOP/s per shape](plots/gflops.png)"
        echo
        echo "## Roofline"
        echo
        echo "AUTO's GFLOP/s against FLOPs per byte of K and V, with the measured FMA peak and" \
             "read-bandwidth ceilings of each thread count (the tables above give % roof)."
        echo
        echo "![Roofline](plots/roofline.png)"
        echo
        echo "## Engine path"
        echo
        echo "From \`flat-bench-engine\` in the same run (paged decode, plan overheads, score rules, element types)."
        sed 's/^# flat-bench-engine.*//' "$out/engine.md"
        echo
        echo "## Extreme inputs"
        echo
        echo "From \`flat-bench-extreme\` in the same run: each extreme input against ordinary" \
             "inputs of the same shape (issue 14: none slower than 2x)."
        sed 's/^# flat-bench-extreme.*//' "$out/extreme.md"
        echo
        echo "## Batch invariance"
        echo
        echo "From \`flat-bench-invariance\` in the same run: FLAT_FLAG_BATCH_INVARIANT against" \
             "without, calls alternating in pairs; opt-in (flat.h)."
        sed 's/^## Batch invariance.*//' "$out/invariance.md"
        echo
        echo "## Mixed calls"
        echo
        echo "From \`flat-bench-mixed\` in the same run: decodes and a prefill chunk in one" \
             "ragged paged call against the two calls apart (issue 21: <= 1.05x)."
        sed 's/^## Mixed step//' "$out/mixed.md"
        echo
        echo "## Quantized caches"
        echo
        echo "From \`flat-bench-quant --only decode 7 1 2\` in the same run: GB/s count codes and" \
             "scales; the last two rows per shape are the int8 and int4 caches under FLAT_PRECISION_INT8" \
             "(avx512_vnni; nan without AVX512_VNNI)."
        sed 's/^flat-bench-quant:.*//' "$out/quant.md"
        echo
        echo "## Memory"
        echo
        cat "$out/memory.md"
        echo
        echo "![Peak memory vs sequence length](plots/memory.png)"
    } > "$md"
    log "wrote $md"
}

start=$(date +%s)
ensure_packages
build_suite
choose_openblas_core
if [ "$quick" = 1 ]; then
    shapes="$here/shapes_quick.csv"
    qsweep="$here/qsweep_quick.csv"
    out="$build/quick"
    plots="$out"
else
    shapes="$here/shapes.csv"
    qsweep="$here/qsweep.csv"
    out="$build"
    plots="$here/plots"
fi
mkdir -p "$out"
rm -f "$out/summary.md" "$out/gflops.dat" "$out/roofline.dat"  # no stale results
suite_start=$(date +%s)
suite_status=0
run_suite || suite_status=$?  # finish the report either way, fail at the end
suite_seconds=$(( $(date +%s) - suite_start ))
require_some_results
run_memory
run_engine
run_extreme
run_invariance
run_mixed
run_quant
plot
numbers_status=0
check_numbers || numbers_status=1
[ "$quick" = 1 ] || write_results_md
log "done in $(( $(date +%s) - start )) s; JSON: $out/results.json"
[ "$numbers_status" = 0 ] || exit 1
if [ "$suite_status" != 0 ]; then
    echo "run.sh: the suite reported failures (exit $suite_status); see the summary above" >&2
    exit 1
fi
