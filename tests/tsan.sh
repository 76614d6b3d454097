#!/usr/bin/env bash
# The ThreadSanitizer leg of tests/run.sh: the threading tests in a TSan build.
#
#   bash tests/tsan.sh        build in build/tsan, run, print a summary line
#
# Why clang: GCC's libgomp is not built with TSan, so under TSan every
# OpenMP barrier looks like no synchronisation at all and each parallel
# region reports races that are not there. LLVM's libomp ships Archer
# (libarcher.so), an OMPT tool that tells TSan about OpenMP's barriers,
# locks and tasks, so flat's OpenMP regions are checked for real, together
# with the engine-style pthread pools of the task interface.
#   1. a probe: a racy OpenMP program must be reported and a synchronised
#      one must not (so a silent leg is a checked one);
#   2. test_threads (concurrent calls, OpenMP inside), test_plan (pthread
#      pools running a plan's tasks in shuffled order), the soak (8 threads
#      of random calls), examples/engine_decode (the engine's own threads).
# As root it installs clang, libomp-dev and libclang-rt-14-dev when missing;
# otherwise it prints the apt-get line and exits 1.
#
# The build without OpenMP: FLAT_TSAN_OPENMP=OFF bash tests/tsan.sh builds
# with -DFLAT_OPENMP=OFF (in build/tsan-off) and runs the same tests plus
# test_engine over flat's own pthread pool, which TSan understands without
# help (mutexes, condition variables and C11 atomics are all it uses); the
# probe then is a racy pthread program. tests/run.sh runs the OpenMP build
# only (its no-openmp leg runs the OFF build's ctest without TSan).
set -uo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS
openmp=${FLAT_TSAN_OPENMP:-ON}
build=${FLAT_TSAN_BUILD:-build/tsan$([ "$openmp" = OFF ] && echo -off)}
jobs=${FLAT_JOBS:-$(nproc)}

pkgs=(clang libomp-dev libclang-rt-14-dev)
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$' ||
        missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" != 0 ]; then
        echo "tsan: missing packages; as root run: apt-get install -y ${missing[*]}" >&2
        exit 1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null || exit 1
fi

archer=$(ls /usr/lib/llvm-*/lib/libarcher.so 2>/dev/null | sort -V | tail -n 1)
[ -n "$archer" ] || { echo "tsan: no libarcher.so (libomp-dev)" >&2; exit 1; }
export OMP_TOOL_LIBRARIES=$archer
export TSAN_OPTIONS="halt_on_error=1 exitcode=66 ignore_noninstrumented_modules=1 second_deadlock_stack=1"
export OMP_WAIT_POLICY=passive

echo "tsan: clang $(clang -dumpversion), Archer $archer"
# ---- 1. the probe
probe=$(mktemp -d)
cat >"$probe/race.c" <<'EOF'
#include <stdio.h>
int main(int argc, char **argv)
{
    (void)argv;
    int x = 0;
#pragma omp parallel num_threads(2)
    {
        if (argc > 1) {
            x++; /* the race */
        } else {
#pragma omp atomic
            x++;
        }
    }
    printf("%d\n", x);
    return 0;
}
EOF
probe_ok=1
if [ "$openmp" = OFF ]; then # the same probe on pthreads, the OFF build's runtime
    cat >"$probe/race.c" <<'EOF'
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
static int racy, x;
static atomic_int y;
static void *body(void *p)
{
    (void)p;
    if (racy)
        x++; /* the race */
    else
        atomic_fetch_add(&y, 1);
    return NULL;
}
int main(int argc, char **argv)
{
    (void)argv;
    racy = argc > 1;
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&t[i], NULL, body, NULL);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    printf("%d\n", x + atomic_load(&y));
    return 0;
}
EOF
fi
if ! clang -fsanitize=thread $([ "$openmp" = ON ] && echo -fopenmp=libomp) -pthread -g \
        "$probe/race.c" -o "$probe/race"; then
    echo "tsan: the probe does not build" >&2
    probe_ok=0
else
    "$probe/race" race >"$probe/out" 2>&1
    if [ $? != 66 ] || ! grep -q "data race" "$probe/out"; then
        echo "tsan: PROBE FAILED: a racy OpenMP program was not reported" >&2
        probe_ok=0
    fi
    if ! "$probe/race" >"$probe/out" 2>&1; then
        echo "tsan: PROBE FAILED: a synchronised OpenMP program was reported:" >&2
        cat "$probe/out" >&2
        probe_ok=0
    fi
fi
rm -rf "$probe"
[ $probe_ok = 1 ] && echo "tsan: probe: a race in $([ "$openmp" = ON ] && echo "an OpenMP region" || echo "a pthread program") is reported, an atomic is not"

# ---- 2. the build and the threading tests
CC=clang cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFLAT_TSAN=ON \
    -DFLAT_BUILD_TESTS=ON -DFLAT_BUILD_BENCHMARKS=OFF -DFLAT_TEST_QUICK=ON -DFLAT_OPENMP="$openmp" \
    >"$build.configure.log" 2>&1 || { cat "$build.configure.log"; exit 1; }
targets=(test_threads test_plan soak engine_decode)
[ "$openmp" = OFF ] && targets+=(test_engine)
cmake --build "$build" -j "$jobs" --target "${targets[@]}" >"$build.build.log" 2>&1 ||
    { tail -n 40 "$build.build.log"; exit 1; }

passed=0 failed=0
run() { # name command...
    local name=$1 t0=$SECONDS
    shift
    if "$@" >"$build/$name.log" 2>&1; then
        passed=$((passed + 1))
        echo "tsan: $name: ok ($((SECONDS - t0)) s, no race reported)"
    else
        failed=$((failed + 1))
        echo "tsan: $name: FAILED" >&2
        grep -A 30 -m 1 "WARNING: ThreadSanitizer" "$build/$name.log" >&2 || tail -n 30 "$build/$name.log" >&2
    fi
}
run test_threads "$build/tests/test_threads"
run test_plan "$build/tests/test_plan"
run soak "$build/tests/fuzz/soak" --calls 300
run engine_decode "$build/examples/engine_decode" 24 3 bf16
[ "$openmp" = OFF ] && run test_engine "$build/tests/test_engine"
echo "tsan: $passed passed, $failed failed, probe $([ $probe_ok = 1 ] && echo ok || echo FAILED) ($((SECONDS - start)) s)"
[ $failed = 0 ] && [ $probe_ok = 1 ]
