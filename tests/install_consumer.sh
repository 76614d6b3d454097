#!/bin/sh
# ctest install_consumer: install the build into a temporary prefix, then build
# and run tests/consumer against it twice: with CMake (find_package(flat) +
# flat::flat, and flat::flat_static) and with pkg-config (shared, and static
# through `pkg-config --static`).
#   install_consumer.sh <build dir> <consumer source dir> <cmake> <C compiler> <sanitize 0|1>
set -eu
build=$1 consumer=$2 cmake=$3 cc=$4 sanitize=$5
work=$(mktemp -d "${TMPDIR:-/tmp}/flat-install-test.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
prefix=$work/prefix
flags=
if [ "$sanitize" = 1 ]; then flags="-fsanitize=address,undefined"; fi

step() { echo "== $*"; }

step "cmake --install $build --prefix $prefix"
"$cmake" --install "$build" --prefix "$prefix" > "$work/install.log"
test -f "$prefix/include/flat.h" || { echo "FAIL: flat.h not installed"; exit 1; }
so=$(find "$prefix" -name libflat.so | head -n 1)
[ -n "$so" ] || { echo "FAIL: libflat.so not installed"; cat "$work/install.log"; exit 1; }
libdir=$(dirname "$so")
[ -f "$libdir/libflat.a" ] || { echo "FAIL: libflat.a not installed"; exit 1; }
[ -f "$libdir/pkgconfig/flat.pc" ] || { echo "FAIL: flat.pc not installed"; exit 1; }
[ -f "$libdir/cmake/flat/flat-config.cmake" ] || { echo "FAIL: flat-config.cmake not installed"; exit 1; }
echo "installed: $(cd "$prefix" && find . -type f -o -type l | sort | tr '\n' ' ')"

step "CMake consumer (find_package(flat), CMAKE_PREFIX_PATH=$prefix)"
"$cmake" -S "$consumer" -B "$work/cmake" -DCMAKE_PREFIX_PATH="$prefix" \
    -DCMAKE_C_COMPILER="$cc" -DCMAKE_C_FLAGS="$flags" > "$work/cmake.log" 2>&1 ||
    { cat "$work/cmake.log"; exit 1; }
"$cmake" --build "$work/cmake" > "$work/build.log" 2>&1 || { cat "$work/build.log"; exit 1; }
"$work/cmake/consumer"
"$work/cmake/consumer_static"

step "pkg-config consumer"
export PKG_CONFIG_PATH="$libdir/pkgconfig"
# flat.pc derives its prefix from its own location, so the staged install
# must resolve without any --define-variable help.
pc="pkg-config"
cflags=$($pc --cflags flat)
libs=$($pc --libs flat)
echo "pkg-config --cflags --libs flat: $cflags $libs"
# shellcheck disable=SC2086
"$cc" $flags "$consumer/main.c" -o "$work/consumer_pc" $cflags $libs
LD_LIBRARY_PATH="$libdir" "$work/consumer_pc"
# Static: pkg-config --static adds Libs.private; -l:libflat.a forces the archive.
static_libs=$($pc --static --libs flat | sed 's/-lflat\b/-l:libflat.a/')
echo "pkg-config --static --libs flat (archive forced): $static_libs"
# shellcheck disable=SC2086
"$cc" $flags "$consumer/main.c" -o "$work/consumer_pc_static" $cflags $static_libs
if ldd "$work/consumer_pc_static" 2>/dev/null | grep -q 'libflat\.so'; then
    echo "FAIL: the static consumer links libflat.so"; exit 1
fi
"$work/consumer_pc_static"
echo "install_consumer: ok"
