#!/bin/sh
# ctest install_consumer: install the build into a temporary prefix, then build
# and run tests/consumer against it:
#   - with CMake (find_package(flat)) as a C-only, a C++-only and a mixed C/C++
#     project, each linking flat::flat and flat::flat_static: the four ways
#     (C and C++ x shared and static), and the package loads in all three;
#   - with pkg-config from C and C++, shared and static (`pkg-config --static`).
# A shared consumer must not itself need libgomp (libflat.so carries it), and
# a static one must not need libflat.so. The build's threading (FLAT_OPENMP)
# shows in all three: libflat.so needs libgomp (ON) or no OpenMP runtime at
# all (OFF: nor does a static consumer); flat.pc's Libs.private says
# -fopenmp or -pthread; flat-config.cmake sets flat_OPENMP.
#   install_consumer.sh <build dir> <consumer source dir> <cmake> <C compiler>
#                       <C++ compiler, or "" to skip the C++ consumers> <sanitize 0|1>
#                       [<openmp 0|1>, default 1]
set -eu
build=$1 consumer=$2 cmake=$3 cc=$4 cxx=$5 sanitize=$6 openmp=${7:-1}
work=$(mktemp -d "${TMPDIR:-/tmp}/flat-install-test.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
prefix=$work/prefix
flags=
if [ "$sanitize" = 1 ]; then flags="-fsanitize=address,undefined"; fi

step() { echo "== $*"; }
fail() { echo "FAIL: $*"; exit 1; }

# needed_ok <program> <shared|static>: the program's own DT_NEEDED entries.
needed_ok() {
    command -v readelf >/dev/null 2>&1 || return 0
    needed=$(readelf -d "$1" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | tr '\n' ' ')
    case "$2:$needed" in
    shared:*libgomp*) fail "$1 needs libgomp itself ($needed)" ;;
    static:*libgomp* | static:*libomp*)
        [ "$openmp" = 1 ] || fail "$1 needs an OpenMP runtime from an OFF build ($needed)" ;;
    shared:*libflat.so*) ;;
    shared:*) fail "$1 does not need libflat.so ($needed)" ;;
    static:*libflat.so*) fail "$1 links libflat.so ($needed)" ;;
    esac
}

# run_consumer <program> <shared|static>
run_consumer() {
    needed_ok "$1" "$2"
    printf '%s: ' "$(basename "$1")"
    LD_LIBRARY_PATH="$libdir" "$1"
}

step "cmake --install $build --prefix $prefix"
"$cmake" --install "$build" --prefix "$prefix" > "$work/install.log"
test -f "$prefix/include/flat.h" || fail "flat.h not installed"
so=$(find "$prefix" -name libflat.so | head -n 1)
[ -n "$so" ] || { cat "$work/install.log"; fail "libflat.so not installed"; }
libdir=$(dirname "$so")
[ -f "$libdir/libflat.a" ] || fail "libflat.a not installed"
[ -f "$libdir/pkgconfig/flat.pc" ] || fail "flat.pc not installed"
[ -f "$libdir/cmake/flat/flat-config.cmake" ] || fail "flat-config.cmake not installed"
echo "installed: $(cd "$prefix" && find . -type f -o -type l | sort | tr '\n' ' ')"

step "the threading runtime each file names (openmp=$openmp)"
private=$(sed -n 's/^Libs.private: //p' "$libdir/pkgconfig/flat.pc")
config=$(sed -n 's/^set(flat_OPENMP \(.*\))$/\1/p' "$libdir/cmake/flat/flat-config.cmake")
lib_needed=
if command -v readelf >/dev/null 2>&1; then
    lib_needed=$(readelf -d "$so" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | tr '\n' ' ')
fi
echo "libflat.so needs: $lib_needed; flat.pc Libs.private: $private; flat_OPENMP: $config"
if [ "$openmp" = 1 ]; then
    case "$private" in *openmp*) ;; *) fail "flat.pc names no OpenMP flag: $private" ;; esac
    [ "$config" = ON ] || fail "flat-config.cmake: flat_OPENMP is '$config', not ON"
    case "$lib_needed" in "" | *gomp* | *libomp*) ;; *) fail "libflat.so needs no OpenMP runtime" ;; esac
else
    case "$private" in *openmp*) fail "flat.pc of an OFF build names OpenMP: $private" ;; esac
    case "$private" in *-pthread*) ;; *) fail "flat.pc names no -pthread: $private" ;; esac
    [ "$config" = OFF ] || fail "flat-config.cmake: flat_OPENMP is '$config', not OFF"
    case "$lib_needed" in *gomp* | *libomp* | *iomp*) fail "libflat.so needs OpenMP: $lib_needed" ;; esac
fi

languages="C"
if [ -n "$cxx" ]; then
    languages="C CXX C;CXX"
else
    echo "NOTE: no C++ compiler found at configure time: C++ consumers skipped (install g++)"
fi
for langs in $languages; do
    dir=$work/cmake-$(echo "$langs" | tr ';' '-')
    step "CMake consumer, project(... LANGUAGES $langs), find_package(flat)"
    "$cmake" -S "$consumer" -B "$dir" -DCMAKE_PREFIX_PATH="$prefix" \
        "-DCONSUMER_LANGUAGES=$langs" -DCMAKE_C_COMPILER="$cc" -DCMAKE_C_FLAGS="$flags" \
        ${cxx:+-DCMAKE_CXX_COMPILER="$cxx"} -DCMAKE_CXX_FLAGS="$flags" \
        > "$dir.configure.log" 2>&1 || { cat "$dir.configure.log"; fail "configure ($langs)"; }
    "$cmake" --build "$dir" > "$dir.build.log" 2>&1 ||
        { cat "$dir.build.log"; fail "build ($langs)"; }
    for program in "$dir"/consumer_*_shared "$dir"/consumer_*_static; do
        run_consumer "$program" "${program##*_}"
    done
done

step "pkg-config consumers"
export PKG_CONFIG_PATH="$libdir/pkgconfig"
# flat.pc derives its prefix from its own location, so the staged install
# must resolve without any --define-variable help.
cflags=$(pkg-config --cflags flat)
libs=$(pkg-config --libs flat)
# Static: pkg-config --static adds Libs.private; -l:libflat.a forces the archive.
static_libs=$(pkg-config --static --libs flat | sed 's/-lflat\b/-l:libflat.a/')
echo "pkg-config --cflags --libs flat: $cflags $libs"
echo "pkg-config --static --libs flat (archive forced): $static_libs"
set -- "$cc" main.c
[ -z "$cxx" ] || set -- "$@" "$cxx" main.cpp
while [ $# -gt 0 ]; do
    compiler=$1 source=$2
    shift 2
    name=$work/pc_${source%%.*}_${source##*.}
    # shellcheck disable=SC2086
    "$compiler" $flags "$consumer/$source" -o "${name}_shared" $cflags $libs
    run_consumer "${name}_shared" shared
    # shellcheck disable=SC2086
    "$compiler" $flags "$consumer/$source" -o "${name}_static" $cflags $static_libs
    run_consumer "${name}_static" static
done
echo "install_consumer: ok"
