# Cross build for AArch64 Linux with Debian's cross toolchain; tests run under
# qemu-user. Used by tests/aarch64.sh:
#
#   cmake -S . -B build/aarch64 -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake
#
# Host packages: gcc-aarch64-linux-gnu qemu-user (the cross gcc brings libgomp).
# Target libraries for the tests come from Debian multiarch
# (dpkg --add-architecture arm64; apt-get install libcmocka-dev:arm64
# libsleef-dev:arm64), which puts them in /usr/lib/aarch64-linux-gnu.

set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(FLAT_CROSS_TRIPLE aarch64-linux-gnu)

set(CMAKE_C_COMPILER ${FLAT_CROSS_TRIPLE}-gcc)
# C++ only matters for the benchmarks' shim; set it when the compiler exists.
find_program(FLAT_CROSS_CXX ${FLAT_CROSS_TRIPLE}-g++)
if(FLAT_CROSS_CXX)
  set(CMAKE_CXX_COMPILER ${FLAT_CROSS_CXX})
endif()

# Where target files live: the cross toolchain's own tree (libc, libgomp) and
# the multiarch directories under / (cmocka, sleef). Searching / is safe here
# because every lookup below is restricted to the target's library
# architecture first (lib/aarch64-linux-gnu, include/aarch64-linux-gnu), and
# host libraries live in lib/x86_64-linux-gnu, which is never searched.
set(CMAKE_LIBRARY_ARCHITECTURE ${FLAT_CROSS_TRIPLE})
set(CMAKE_FIND_ROOT_PATH /usr/${FLAT_CROSS_TRIPLE} /)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

# pkg-config must read the target's .pc files, never the host's.
set(ENV{PKG_CONFIG_LIBDIR} "/usr/lib/${FLAT_CROSS_TRIPLE}/pkgconfig:/usr/share/pkgconfig")
set(ENV{PKG_CONFIG_PATH} "")

# ctest runs target executables through this (add_test with a target name,
# try_run). -L makes the cross tree the guest's root, so the guest loads the
# cross toolchain's dynamic loader. LD_LIBRARY_PATH then pins libc and
# libgomp to that same tree: otherwise the loader's cache lookup finds the
# multiarch libc6:arm64 that libcmocka0:arm64 pulls in, a different glibc
# build from the loader's, and the two must match exactly.
set(CMAKE_CROSSCOMPILING_EMULATOR
    qemu-${CMAKE_SYSTEM_PROCESSOR} -L /usr/${FLAT_CROSS_TRIPLE}
    -E LD_LIBRARY_PATH=/usr/${FLAT_CROSS_TRIPLE}/lib)
