#!/bin/sh
# Builds and runs tests/consumer/consumer.c the two other ways downstream
# builds find libae, shared and static each time:
#   cmake   installs the build into a temporary DESTDIR and builds the CMake
#           project tests/consumer/cmake against it with find_package(ae)
#           (the installed aeConfig.cmake, ae::ae and ae::ae_static);
#   meson   builds the meson project tests/consumer/meson with this source
#           tree linked in as its subproject subprojects/libae, so that
#           dependency('ae', fallback : 'libae') is answered by libae's
#           meson.override_dependency().
# Both check that the programs use the libae under test (not one installed
# on the system) before running them.
#
# Usage: consumer_test.sh cmake BUILD_ROOT SOURCE_ROOT PREFIX
#        consumer_test.sh meson SOURCE_ROOT [skip-reason]
# Environment: MESON (meson command), AE_TEST_CFLAGS (extra compile and link
# flags for the CMake build, e.g. the build's -fsanitize=...).
# Exits 77 (a skipped test) when cmake is missing or a skip reason is given.
set -eu

mode=$1
shift
meson=${MESON:-meson}

fail() {
    echo "consumer_test($mode): FAIL: $*" >&2
    exit 1
}
skip() {
    echo "consumer_test($mode): SKIP: $*" >&2
    exit 77
}

# meson test points LD_LIBRARY_PATH at the build tree; the programs here
# must find their libae by themselves.
unset LD_LIBRARY_PATH

tmp=$(mktemp -d "${TMPDIR:-/tmp}/ae-consumer.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' INT TERM

# needs_libae EXE DIR: EXE loads libae.so.0 from DIR.
needs_libae() {
    readelf -d "$1" | grep -q 'NEEDED.*\[libae\.so\.0\]' || fail "$1 does not need libae.so.0"
    ldd "$1" | grep -q "libae\.so\.0 => $2/libae\.so\.0 " ||
        fail "$1 does not load libae.so.0 from $2: $(ldd "$1" | grep libae)"
}
# static_libae EXE: libae is linked into EXE.
static_libae() {
    if readelf -d "$1" | grep -q 'NEEDED.*\[libae\.so'; then
        fail "$1 needs libae.so but should contain libae.a"
    fi
}

case $mode in
cmake)
    build=$1 src=$2 prefix=$3
    command -v cmake >/dev/null 2>&1 || skip "cmake is not installed (apt-get install cmake)"
    dest=$tmp/dest
    "$meson" install -C "$build" --no-rebuild --quiet --destdir "$dest" >"$tmp/install.log" 2>&1 ||
        { cat "$tmp/install.log" >&2; fail "meson install failed"; }
    config=$(find "$dest" -path '*/cmake/ae/aeConfig.cmake' | head -n 1)
    [ -n "$config" ] || fail "aeConfig.cmake was not installed"
    cfgdir=$(dirname "$config")
    [ -e "$cfgdir/aeConfigVersion.cmake" ] || fail "aeConfigVersion.cmake was not installed"
    case $cfgdir in
    "$dest$prefix"/lib*/cmake/ae) ;;
    *) fail "aeConfig.cmake is in ${cfgdir#"$dest"}, not under \$prefix/\$libdir/cmake/ae" ;;
    esac
    grep -q 'SameMajorVersion\|CVF_VERSION_MAJOR' "$cfgdir/aeConfigVersion.cmake" ||
        fail "aeConfigVersion.cmake does not compare major versions"

    gen=
    command -v ninja >/dev/null 2>&1 && gen="-G Ninja"
    # shellcheck disable=SC2086 # $gen is zero or two words
    cmake -S "$src/tests/consumer/cmake" -B "$tmp/build" $gen \
        -DCMAKE_PREFIX_PATH="$dest$prefix" -DCMAKE_BUILD_TYPE=Release \
        -DCMAKE_C_FLAGS="${AE_TEST_CFLAGS:-}" >"$tmp/cmake.log" 2>&1 ||
        { cat "$tmp/cmake.log" >&2; fail "cmake could not configure the consumer"; }
    cat "$tmp/cmake.log"
    found=$(sed -n 's/^ae_DIR:[A-Z]*=//p' "$tmp/build/CMakeCache.txt")
    [ "$found" = "$cfgdir" ] || fail "find_package(ae) used $found, not $cfgdir"
    cmake --build "$tmp/build" >"$tmp/build.log" 2>&1 ||
        { cat "$tmp/build.log" >&2; fail "the CMake consumer does not build"; }

    libdir=$(dirname "$(find "$dest" -name libae.so.0 | head -n 1)")
    # The imported location is a full path, so CMake's build RPATH points
    # at the installed copy: no LD_LIBRARY_PATH.
    needs_libae "$tmp/build/consumer_shared" "$libdir"
    "$tmp/build/consumer_shared" || fail "consumer_shared exited with $?"
    static_libae "$tmp/build/consumer_static"
    "$tmp/build/consumer_static" || fail "consumer_static exited with $?"
    echo "consumer_test(cmake): OK (ae::ae and ae::ae_static from ${cfgdir#"$dest"})"
    ;;
meson)
    src=$1
    [ $# -lt 2 ] || skip "$2"
    # The parent project as a user would lay it out, libae's tree linked in.
    mkdir -p "$tmp/proj/meson/subprojects"
    cp "$src/tests/consumer/consumer.c" "$tmp/proj/"
    cp "$src/tests/consumer/meson/meson.build" "$tmp/proj/meson/"
    ln -s "$src" "$tmp/proj/meson/subprojects/libae"
    # --force-fallback-for: an ae.pc installed on this machine must not
    # answer instead of the subproject. debug: the fastest compile.
    "$meson" setup "$tmp/build" "$tmp/proj/meson" --force-fallback-for=ae \
        --buildtype=debug >"$tmp/setup.log" 2>&1 ||
        { cat "$tmp/setup.log" >&2; fail "meson setup of the parent project failed"; }
    grep -q 'Executing subproject libae' "$tmp/setup.log" ||
        { cat "$tmp/setup.log" >&2; fail "the parent project did not run the subproject"; }
    "$meson" compile -C "$tmp/build" >"$tmp/compile.log" 2>&1 ||
        { cat "$tmp/compile.log" >&2; fail "the parent project does not build"; }
    needs_libae "$tmp/build/consumer_shared" "$tmp/build/subprojects/libae"
    "$tmp/build/consumer_shared" || fail "consumer_shared exited with $?"
    static_libae "$tmp/build/consumer_static"
    "$tmp/build/consumer_static" || fail "consumer_static exited with $?"
    echo "consumer_test(meson): OK (libae as the subproject subprojects/libae)"
    ;;
*)
    fail "unknown mode '$mode' (cmake or meson)"
    ;;
esac
