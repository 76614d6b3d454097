#!/usr/bin/env bash
# The whole test suite, as the README's test command:
#
#   bash tests/run.sh
#
# On a fresh Debian 12 machine: installs (as root) or names (otherwise) the
# Debian packages it needs, then
#   1. builds in build/tests and runs ctest;
#   1b. builds without OpenMP (-DFLAT_OPENMP=OFF: flat's own pthread pool) in
#      build/no-openmp and runs its ctest in quick mode (the same suites and
#      code paths, shorter sweeps; install_consumer checks that the library,
#      flat.pc and the CMake package name no OpenMP runtime);
#      where the CPU has AVX512_BF16, also build/amx-emu (-DFLAT_AMX_EMULATE=ON:
#      the amx_bf16 table on a C model of the tiles) and the suites that hold
#      bf16-product tables (only their executables are built);
#   2. runs the Python package's pytest suite (python/tests) on that build's
#      libflat with Debian's /usr/bin/python3, then pip-installs the package
#      into a fresh venv (offline) and makes one call from outside the tree;
#   3. builds with -DFLAT_SANITIZE=ON (ASan + UBSan) in build/asan and runs ctest
#      in quick mode (-DFLAT_TEST_QUICK=ON; the plain step ran the full sweeps);
#   4. fuzzing: builds the libFuzzer target with clang (-DFLAT_BUILD_FUZZ=ON,
#      build/fuzz), runs it for FLAT_FUZZ_SECONDS (60) from tests/fuzz/corpus,
#      then replays every input it kept through build/asan's fuzz_replay
#      (gcc ASan + UBSan, kernels instrumented too);
#   5. runs tests/tsan.sh: ThreadSanitizer (clang, libomp + Archer) over the
#      threading tests, the soak and the engine example;
#   6. runs tests/aarch64.sh (NEON build under qemu-aarch64), when present;
#   7. runs `benchmarks/run.sh --quick` as a smoke test, when present: it fails
#      unless every shape of the quick set has a timed row in its summary;
# and prints a summary. Exits non-zero if any step fails (every step runs).
# FLAT_REQUIRE_ISAS is set to the kernel tables this CPU can run (scalar, plus
# avx2 / avx512 / avx512_bf16 / avx512_vnni / amx_bf16 from /proc/cpuinfo), so a table that silently
# does not run fails the suites. Works non-interactively (CI=true, no stdin).
#
# Environment:
#   FLAT_JOBS            parallel build and test jobs (default: nproc)
#   FLAT_FUZZ_SECONDS    length of the fuzz run of step 4 (default 60)
#   FLAT_SKIP_AARCH64=1  skip step 6;  FLAT_SKIP_BENCH=1  skip step 7
set -uo pipefail
exec </dev/null
cd "$(dirname "$0")/.."
root=$PWD
jobs=${FLAT_JOBS:-$(nproc 2>/dev/null || echo 2)}
start_all=$SECONDS

# ---------------------------------------------------------------- packages
pkgs=(cmake gcc g++ make pkg-config binutils libcmocka-dev libsleef-dev
      clang libclang-rt-14-dev libomp-dev ccache
      python3-numpy python3-pytest python3-venv python3-pip python3-setuptools python3-wheel)

installed() {
    # native-architecture instance first (multiarch may hold an arm64 one too)
    local arch
    arch=$(dpkg --print-architecture)
    dpkg-query -W -f='${Status}\n' "$1:$arch" 2>/dev/null | grep -q '^install ok installed$' ||
        dpkg-query -W -f='${Status}\n' "$1" 2>/dev/null | grep -q '^install ok installed$'
}

if command -v dpkg-query >/dev/null 2>&1; then
    missing=()
    for p in "${pkgs[@]}"; do
        installed "$p" || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        if [ "$(id -u)" != 0 ]; then
            echo "tests/run.sh: missing Debian packages: ${missing[*]}" >&2
            echo "Install them with:" >&2
            echo "  sudo apt-get install -y ${missing[*]}" >&2
            exit 1
        fi
        echo "== installing ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        if ! ls /var/lib/apt/lists/*_Packages >/dev/null 2>&1; then
            apt-get update -qq || exit 1
        fi
        if ! apt-get install -y -qq "${missing[@]}" >/dev/null; then
            # stale package lists: refresh once and retry
            apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null || {
                echo "tests/run.sh: apt-get install ${missing[*]} failed" >&2
                exit 1
            }
        fi
    fi
else
    echo "note: no dpkg (not Debian?): assuming ${pkgs[*]} are installed"
fi

# ------------------------------------------------------------------ ccache
# The legs compile the same kernel objects with the same flags (plain,
# no-openmp and amx-emu share every table but amx_bf16; tsan's two builds
# share all of theirs), and the kernels are most of the build time (gcc 12,
# avx512/qk_rows.c alone ~50 s). One cache under build/ shares them within a
# run: a clean clone starts it empty, so nothing outlives the clone. CMake
# (>= 3.17) reads the launcher from the environment on first configure, so the
# leg scripts (tsan.sh, aarch64.sh, benchmarks/run.sh) use it too.
# CCACHE_NOHASHDIR: -g objects hash their directory by default, which would
# make every build dir miss; their debug info then names the first build dir.
if command -v ccache >/dev/null 2>&1; then
    export CCACHE_DIR=${CCACHE_DIR:-$root/build/ccache} CCACHE_NOHASHDIR=1 CCACHE_BASEDIR=$root
    export CMAKE_C_COMPILER_LAUNCHER=${CMAKE_C_COMPILER_LAUNCHER:-ccache}
    export CMAKE_CXX_COMPILER_LAUNCHER=${CMAKE_CXX_COMPILER_LAUNCHER:-ccache}
fi

# ------------------------------------------------------------ required ISAs
# The tables this CPU runs; the suites fail if one of them did not run.
require=scalar
case "$(uname -m)" in
x86_64 | amd64)
    flags=$(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null || true)
    has() { [[ " $flags " == *" $1 "* ]]; }
    if has avx2 && has fma; then require+=,avx2; fi
    if has avx512f && has avx512bw && has avx512vl && has avx512dq; then
        require+=,avx512
        if has avx512_bf16; then require+=,avx512_bf16; fi
        if has avx512_vnni; then require+=,avx512_vnni; fi
        # AMX (0.3): the flags appear only where the kernel supports tile state
        if has avx512_bf16 && has amx_tile && has amx_bf16; then require+=,amx_bf16; fi
    fi
    ;;
aarch64 | arm64)
    require+=,neon
    ;;
esac
export FLAT_REQUIRE_ISAS=$require

# ------------------------------------------------------------------- steps
declare -a step_names step_results step_times step_notes
failed=0

# cmocka counts from a build's last ctest log: "<passed> passed, <failed> failed"
cmocka_counts() {
    local log=$1/Testing/Temporary/LastTest.log p f
    [ -f "$log" ] || { echo "no ctest log"; return; }
    p=$(grep -ho '\[  PASSED  \] [0-9]* test' "$log" | awk '{s += $4} END {print s + 0}')
    f=$(grep -ho '\[  FAILED  \] [0-9]* test' "$log" | awk '{s += $4} END {print s + 0}')
    echo "$(grep -c '^[0-9]*/[0-9]* Test:' "$log") ctests, $p cmocka tests passed, $f failed"
}

record() { # name rc seconds note
    step_names+=("$1")
    step_results+=("$([ "$2" = 0 ] && echo ok || echo "FAILED (exit $2)")")
    step_times+=("$3")
    step_notes+=("$4")
    [ "$2" = 0 ] || failed=1
}

# build_and_test <name> <build dir> [cmake args...]
build_and_test() {
    local name=$1 dir=$2 t0=$SECONDS rc=0
    shift 2
    echo
    echo "======== $name: $dir ========"
    cmake -S "$root" -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFLAT_BUILD_TESTS=ON \
        -DFLAT_BUILD_BENCHMARKS=OFF "$@" >"$dir.configure.log" 2>&1 ||
        { cat "$dir.configure.log"; rc=1; }
    if [ $rc = 0 ]; then
        # shellcheck disable=SC2086 # FLAT_BUILD_TARGETS is a list of target names
        if cmake --build "$dir" -j "$jobs" ${FLAT_BUILD_TARGETS:+--target $FLAT_BUILD_TARGETS} \
            >"$dir.build.log" 2>&1; then
            grep -E 'warning:' "$dir.build.log" || true
        else
            tail -n 60 "$dir.build.log"
            rc=1
        fi
    fi
    if [ $rc = 0 ]; then
        ctest --test-dir "$dir" --output-on-failure -j "$jobs" \
            ${FLAT_CTEST_REGEX:+-R "$FLAT_CTEST_REGEX"} || rc=$?
        grep -h ': ran:' "$dir/Testing/Temporary/LastTest.log" 2>/dev/null | sort -u || true
    fi
    record "$name" $rc $((SECONDS - t0)) "$(cmocka_counts "$dir")"
}

mkdir -p build
echo "tests/run.sh: FLAT_REQUIRE_ISAS=$FLAT_REQUIRE_ISAS, $jobs jobs"

build_and_test "plain" build/tests
build_and_test "no-openmp" build/no-openmp -DFLAT_OPENMP=OFF -DFLAT_TEST_QUICK=ON

# The amx_bf16 table on the C model of the tiles (-DFLAT_AMX_EMULATE=ON), so
# CPUs without AMX hold it to its bound too: the suites that run bf16-product
# tables (ukernels, dtypes, precision policy, FLAT_ISA, fuzz corpus, soak,
# plans, threads, fork, quantized caches, batch invariance). It needs
# AVX512_BF16 for the rest of the table.
if [[ ",$require," == *",avx512_bf16,"* ]]; then
    emu_require=$require
    [[ ",$require," == *",amx_bf16,"* ]] || emu_require+=,amx_bf16
    # Only those suites' executables are built (the library takes most of the time).
    FLAT_REQUIRE_ISAS=$emu_require FLAT_CTEST_REGEX='test_ukernels|test_dtypes|test_precision|test_isa_env|fuzz_corpus|soak|test_plan|test_threads|test_fork|test_quant|test_invariance' \
        FLAT_BUILD_TARGETS='test_ukernels test_dtypes test_precision test_isa_env fuzz_replay soak test_plan test_threads test_fork test_quant test_quantize test_quantize_rows test_quant_kernels test_quant_accuracy test_quant_paged test_invariance' \
        build_and_test "amx emulated" build/amx-emu -DFLAT_AMX_EMULATE=ON
fi

# The Python package over the plain build's library: pytest, then a venv
# install (pip offline, Debian's numpy through --system-site-packages) used
# from outside the source tree.
echo
echo "======== python (pytest): python/tests on build/tests/libflat.so.0 ========"
t0=$SECONDS
rc=0
py=/usr/bin/python3
lib=$root/build/tests/libflat.so.0
log=$(mktemp)
tmp=$(mktemp -d)
if [ ! -f "$lib" ]; then
    echo "no $lib: the plain step did not build it" | tee "$log"
    rc=1
else
    FLAT_LIBRARY=$lib "$py" -m pytest -q -p no:cacheprovider python/tests 2>&1 | tee "$log" ||
        rc=$?
    echo "-- pip install ./python into a venv, one call from $tmp"
    cp -r python "$tmp/src"
    if "$py" -m venv --system-site-packages "$tmp/venv" &&
        FLAT_LIBRARY=$lib "$tmp/venv/bin/pip" install -q --no-build-isolation --no-index \
            "$tmp/src" &&
        (cd "$tmp" && env -u FLAT_LIBRARY "$tmp/venv/bin/python" -c '
import sys, numpy as np, flat
assert flat.__file__.startswith(sys.prefix), flat.__file__
assert flat.library_path().startswith(sys.prefix), flat.library_path()
q = np.ones((1, 2, 3, 8), np.float32)
assert np.allclose(flat.attention(q, q, q, causal=True), 1.0)
print("venv: flat", flat.version(), "from", flat.library_path())'); then
        echo "venv install ok" >>"$log"
    else
        echo "venv install FAILED" | tee -a "$log"
        rc=1
    fi
fi
record "python (pytest)" $rc $((SECONDS - t0)) \
    "pytest: $(grep -Eo '[0-9]+ (passed|failed|errors?)' "$log" | paste -sd, - | sed 's/,/, /g'); $(grep -Eo 'venv install (ok|FAILED)' "$log" | tail -n 1)"
rm -rf "$log" "$tmp"

# ASan + UBSan. LeakSanitizer stays on: libgomp's thread pool is not reported
# (checked), so no suppressions are needed. The ctest ENVIRONMENT of each test
# sets the same options (tests/CMakeLists.txt); these cover anything else.
export ASAN_OPTIONS=abort_on_error=1:detect_leaks=1:detect_stack_use_after_return=1:check_initialization_order=1:strict_string_checks=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
# Quick sweeps (-DFLAT_TEST_QUICK=ON: the same suites and code paths, shorter
# sequences and sampled grids): the plain step ran them in full, and the
# sanitizers' findings do not depend on the length of a sweep.
build_and_test "asan+ubsan" build/asan -DFLAT_SANITIZE=ON -DFLAT_TEST_QUICK=ON
unset ASAN_OPTIONS UBSAN_OPTIONS

# Fuzzing for a bounded time; the long run is the README's command.
echo
echo "======== fuzz: tests/fuzz/fuzz_attention for ${FLAT_FUZZ_SECONDS:-60} s ========"
t0=$SECONDS
rc=0
note=""
fz=$(mktemp -d)
if CC=clang cmake -S "$root" -B build/fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFLAT_BUILD_FUZZ=ON \
        -DFLAT_BUILD_TESTS=OFF >build/fuzz.configure.log 2>&1 &&
    cmake --build build/fuzz -j "$jobs" --target fuzz_attention >build/fuzz.build.log 2>&1; then
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
        build/fuzz/tests/fuzz/fuzz_attention -max_total_time="${FLAT_FUZZ_SECONDS:-60}" \
        -timeout=30 -rss_limit_mb=4096 -artifact_prefix="$fz/" "$fz" tests/fuzz/corpus \
        >"$fz.log" 2>&1 || rc=$?
    grep -E 'fuzz_attention:|SUMMARY|ERROR' "$fz.log" || true
    done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$fz.log" | tail -n 1)
    note="$(echo "$done_line" | awk '{print substr($1, 2) " execs, " $3 " " $4}')"
    echo "fuzz: ${done_line:-no DONE line}"
    # what the run kept, through the gcc ASan + UBSan build (kernels instrumented)
    if [ $rc = 0 ] && [ -x build/asan/tests/fuzz/fuzz_replay ]; then
        ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
            build/asan/tests/fuzz/fuzz_replay "$fz" | tail -n 1 || rc=$?
        note="$note; $(ls "$fz" | wc -l) inputs replayed under gcc ASan"
    fi
else
    tail -n 40 build/fuzz.build.log build/fuzz.configure.log 2>/dev/null
    rc=1
fi
record "fuzz" $rc $((SECONDS - t0)) "$note"
rm -rf "$fz" "$fz.log"

# run_leg <name> <script> <prefix>: a leg script, its "<prefix>: N passed" line as the note.
run_leg() {
    local name=$1 script=$2 prefix=$3 t0=$SECONDS rc=0 out
    echo
    echo "======== $name ($script) ========"
    out=$(mktemp)
    bash "$script" 2>&1 | tee "$out" || rc=$?
    record "$name" $rc $((SECONDS - t0)) "$(grep -h "^$prefix: [0-9]* passed" "$out" | tail -n 1)"
    rm -f "$out"
}

run_leg "tsan" tests/tsan.sh tsan
if [ -f tests/aarch64.sh ] && [ "${FLAT_SKIP_AARCH64:-0}" != 1 ]; then
    run_leg "aarch64 (qemu)" tests/aarch64.sh aarch64
fi

if [ -f benchmarks/run.sh ] && [ "${FLAT_SKIP_BENCH:-0}" != 1 ]; then
    echo
    echo "======== benchmarks smoke (benchmarks/run.sh --quick) ========"
    t0=$SECONDS
    rc=0
    log=$(mktemp)
    # run.sh --quick fails when a shape of the quick set has no timed row in
    # the summary (an empty or budget-starved run), with one line saying why.
    bash benchmarks/run.sh --quick 2>&1 | tee "$log" || rc=${PIPESTATUS[0]}
    record "benchmarks --quick" $rc $((SECONDS - t0)) \
        "$(grep -E '^run.sh: (FAILED|every shape)' "$log" | tail -n 1 | cut -c1-160)"
    rm -f "$log"
fi

# ----------------------------------------------------------------- summary
echo
echo "======== summary ========"
for i in "${!step_names[@]}"; do
    printf '  %-20s %-18s %5ss  %s\n' "${step_names[$i]}" "${step_results[$i]}" \
        "${step_times[$i]}" "${step_notes[$i]}"
done
echo "  total: $((SECONDS - start_all)) s; FLAT_REQUIRE_ISAS=$FLAT_REQUIRE_ISAS"
if [ $failed != 0 ]; then
    echo "tests/run.sh: FAILED"
    exit 1
fi
echo "tests/run.sh: all passed"
