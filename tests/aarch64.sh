#!/usr/bin/env bash
# The AArch64 leg of tests/run.sh: cross-build flat with its NEON kernels and
# run the whole ctest suite under qemu-aarch64, with FLAT_REQUIRE_ISAS so
# that a NEON (or scalar) table that silently does not run fails the leg.
#
#   bash tests/aarch64.sh            build in build/aarch64, run, print a count
#
# Needs the cross gcc and qemu-user on the host, and cmocka and SLEEF for
# arm64 from Debian multiarch. As root it installs what is missing; otherwise
# it prints the apt-get lines and exits 1. Environment:
#   FLAT_AARCH64_BUILD   build directory (default build/aarch64)
#   FLAT_AARCH64_JOBS    parallel build and test jobs (default: nproc)
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS
build=${FLAT_AARCH64_BUILD:-build/aarch64}
jobs=${FLAT_AARCH64_JOBS:-$(nproc)}

host_pkgs=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user cmake)
target_pkgs=(libcmocka-dev:arm64 libsleef-dev:arm64)

installed() { [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" = "install ok installed" ]; }

missing=()
for p in "${host_pkgs[@]}" "${target_pkgs[@]}"; do
  installed "$p" || missing+=("$p")
done
need_arch=0
dpkg --print-foreign-architectures | grep -qx arm64 || need_arch=1

if [ ${#missing[@]} -gt 0 ] || [ $need_arch = 1 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "aarch64: missing packages: ${missing[*]}" >&2
    echo "aarch64: as root, run:" >&2
    [ $need_arch = 1 ] && echo "  dpkg --add-architecture arm64" >&2
    echo "  apt-get update && apt-get install -y ${host_pkgs[*]} ${target_pkgs[*]}" >&2
    exit 1
  fi
  echo "aarch64: installing ${missing[*]:-(arm64 architecture only)}"
  # Multiarch adds arm64 package lists next to amd64 ones; the arm64
  # libraries land in /usr/lib/aarch64-linux-gnu and conflict with nothing.
  [ $need_arch = 1 ] && dpkg --add-architecture arm64
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${host_pkgs[@]}" "${target_pkgs[@]}" >/dev/null
fi

cmake -S . -B "$build" -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake \
  -DCMAKE_BUILD_TYPE=Release -DFLAT_TEST_QUICK=ON -DFLAT_BUILD_BENCHMARKS=OFF >/dev/null
cmake --build "$build" -j "$jobs"

# The build must hold exactly the AArch64 tables: NEON kernels, no x86 ones.
grep -q 'kernels/neon/' "$build/CMakeFiles/flat_kernels_neon.dir/DependInfo.cmake" ||
  { echo "aarch64: NEON kernels were not built" >&2; exit 1; }
if ls "$build/CMakeFiles" | grep -qE 'flat_kernels_(avx2|avx512)'; then
  echo "aarch64: x86 kernels were built for AArch64" >&2; exit 1
fi

# Every registered test runs. The ones labelled "host" (exports, shapes_in_sync)
# use host tools on the build tree (the cross nm for exports) and need no
# emulator; install_consumer is not registered when cross-compiling.
export FLAT_REQUIRE_ISAS=scalar,neon
rc=0
ctest --test-dir "$build" --output-on-failure -j "$jobs" || rc=$?

# ctest counts executables; each cmocka suite prints cmocka's "[  PASSED  ] N test(s)."
# and "[  FAILED  ] N test(s)" lines, which LastTest.log keeps for all.
log="$build/Testing/Temporary/LastTest.log"
count() { { grep -ho "\[  $1  \] [0-9]* test" "$log" || true; } | awk '{s += $4} END {print s + 0}'; }
passed=$(count PASSED)
failed=$(count FAILED)
suites=$(grep -c '^[0-9]*/[0-9]* Test:' "$log" || true)
echo "aarch64: $suites ctest tests; their cmocka tests under qemu-aarch64: $passed passed," \
     "$failed failed; $((SECONDS - start)) s"
grep -h ': ran:' "$log" | sort -u | sed 's/^/aarch64: /' || true
# A suite that crashed prints no cmocka count; count it as one failure.
crashed=$(grep -c '^Test Failed\.' "$log" || true)
[ "$failed" -lt "$crashed" ] && failed=$crashed
if [ $rc = 0 ] && [ "$failed" != 0 ]; then rc=1; fi
echo "aarch64: $passed passed, $failed failed"
exit $rc
