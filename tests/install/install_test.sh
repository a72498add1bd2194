#!/bin/sh
# Installs a build of libae into a temporary DESTDIR and checks it as a user
# of the package would: the files are where ae.pc says, libae.so has its
# soname, and tests/install/consumer.c builds and runs against the installed
# copy using nothing but `pkg-config ae`, once linked to libae.so and once to
# libae.a.
#
# Usage: install_test.sh BUILD_ROOT SOURCE_ROOT
# Environment: MESON (meson command), CC (C compiler command),
# AE_TEST_CFLAGS (extra compile/link flags, e.g. the build's -fsanitize=...),
# AE_TEST_MPI (0 when the build has no libae_mpi, so no <libae/mpi.h>).
set -eu

build=$1
src=$2
meson=${MESON:-meson}
cc=${CC:-cc}
extra=${AE_TEST_CFLAGS:-}

fail() {
    echo "install_test: FAIL: $*" >&2
    exit 1
}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/ae-install.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' INT TERM
dest=$tmp/dest

$meson install -C "$build" --no-rebuild --quiet --destdir "$dest" >"$tmp/install.log" 2>&1 ||
    { cat "$tmp/install.log" >&2; fail "meson install failed"; }

pcfile=$(find "$dest" -path '*/pkgconfig/ae.pc' | head -n 1)
[ -n "$pcfile" ] || fail "ae.pc was not installed"
PKG_CONFIG_PATH=$(dirname "$pcfile")${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}
export PKG_CONFIG_PATH
prefix=$(pkg-config --variable=prefix ae) || fail "pkg-config cannot read $pcfile"

# The .pc describes the final prefix; point it at the DESTDIR copy.
aepc() {
    pkg-config --define-variable=prefix="$dest$prefix" "$@" ae
}
libdir=$(aepc --variable=libdir)
incdir=$(aepc --variable=includedir)
case $libdir in "$dest"/*) ;; *) fail "libdir '$libdir' is not relative to \${prefix}" ;; esac
case $incdir in "$dest"/*) ;; *) fail "includedir '$incdir' is not relative to \${prefix}" ;; esac

# Every public header of the source tree, the generated version.h, both libraries.
for h in "$src"/include/libae/*.h; do
    [ "${h##*/}" = mpi.h ] && [ "${AE_TEST_MPI:-1}" = 0 ] && continue
    [ -e "$incdir/libae/${h##*/}" ] || fail "header not installed: libae/${h##*/}"
done
for f in "$incdir/libae/version.h" "$libdir/libae.a" "$libdir/libae.so" "$libdir/libae.so.0"; do
    [ -e "$f" ] || fail "not installed: ${f#"$dest"}"
done
soname=$(readelf -d "$libdir/libae.so" | sed -n 's/.*(SONAME).*\[\(.*\)\].*/\1/p')
[ "$soname" = libae.so.0 ] || fail "soname of libae.so is '$soname', expected libae.so.0"

# What a user types: -lae and the search paths of the (non-system) prefix;
# --static adds the private dependencies.
libs=$(aepc --libs)
cflags=$(aepc --cflags)
static_libs=$(aepc --static --libs)
echo "pkg-config --cflags --libs ae: $cflags $libs"
echo "pkg-config --static --libs ae: $static_libs"
has() { # has WORD LIST: WORD is one of the blank-separated words of LIST
    case " $2 " in *" $1 "*) return 0 ;; esac
    return 1
}
has -lae "$libs" || fail "--libs lacks -lae"
has "-L$libdir" "$libs" || fail "--libs lacks -L$libdir"
has "-I$incdir" "$cflags" || fail "--cflags lacks -I$incdir"
for w in -lae -lopenblas -lz -lm; do
    has "$w" "$static_libs" || fail "--static --libs lacks $w"
done
if has -lopenblas "$libs" || has -lz "$libs"; then
    fail "--libs leaks private dependencies: $libs"
fi

cp "$src/tests/install/consumer.c" "$tmp/consumer.c"
cd "$tmp"

# Shared: the program must resolve libae.so.0 from the installed copy.
# shellcheck disable=SC2086 # flags are word lists
$cc $extra -o consumer_shared consumer.c $cflags $libs ||
    fail "cannot build against the shared library"
readelf -d consumer_shared | grep -q 'NEEDED.*\[libae\.so\.0\]' ||
    fail "consumer_shared does not need libae.so.0"
LD_LIBRARY_PATH=$libdir ldd ./consumer_shared | grep -q "libae\.so\.0 => $libdir/libae\.so\.0" ||
    fail "consumer_shared does not load the installed libae.so.0"
LD_LIBRARY_PATH=$libdir ./consumer_shared || fail "consumer_shared exited with $?"

# Static: libae.a linked in, its private dependencies from --static.
link=
for w in $static_libs; do
    [ "$w" = -lae ] && w="-Wl,-Bstatic -lae -Wl,-Bdynamic"
    link="$link $w"
done
# shellcheck disable=SC2086,SC2046
$cc $extra -o consumer_static consumer.c $(aepc --static --cflags) $link ||
    fail "cannot build against the static library"
if readelf -d consumer_static | grep -q 'NEEDED.*\[libae\.so'; then
    fail "consumer_static still needs libae.so"
fi
env -u LD_LIBRARY_PATH ./consumer_static || fail "consumer_static exited with $?"

# The ae tool, when the build has it: the program in bindir, its man page,
# and it runs against the installed library.
if [ -x "$build/tools/ae/ae" ]; then
    aebin=$dest$prefix/bin/ae
    [ -x "$aebin" ] || fail "the ae tool was built but not installed in bindir"
    find "$dest" -path '*/man1/ae.1*' | grep -q . || fail "the man page ae.1 was not installed"
    LD_LIBRARY_PATH=$libdir "$aebin" --version | grep -q "libae" ||
        fail "the installed ae does not run"
fi

echo "install_test: OK (prefix $prefix, soname $soname)"
