#!/bin/bash
# Builds the Debian packages libae0, libae-dev and ae-tools from a clean copy
# of this tree (the files git tracks or would track, as they are now; never
# the build directories or other ignored files), checks them with lintian, installs them with apt-get and
# checks them as a user would, then removes them again:
#   - `ae train` runs (one epoch on a few hundred Fashion-MNIST samples) and
#     `ae info` reads the model it wrote;
#   - tests/install/consumer.c builds with `pkg-config ae` against /usr,
#     shared and static, and runs;
#   - the CMake project tests/consumer/cmake finds libae in /usr through
#     find_package(ae) and builds and runs shared and static.
# The source tree is left as it was (the build happens in a temporary
# directory, which is removed). Installing and removing the packages is
# serialised between concurrent runs by a lock; other builds are not
# affected, since their tests look for libae in their own tree first.
#
# The packages are built with the core dependencies only (see debian/rules)
# and without running the tests (DEB_BUILD_OPTIONS=nocheck: scripts/test.sh
# runs them).
#
# Usage: scripts/deb.sh [--keep DIR]  (--keep: copy the .debs to DIR)
# Needs dpkg-dev, debhelper, fakeroot and lintian; root (or sudo) for the
# install check, which is skipped, loudly, otherwise.
# Exit status: 0 all good, 1 a failure, 77 built and linted but the
# install check was skipped. The last lines are the lintian summary
# ("lintian: N errors, N warnings") and the verdict.
set -euo pipefail

cd "$(dirname "$0")/.."
keep=
if [[ ${1:-} == --keep ]]; then
    [[ -n ${2:-} ]] || { echo "usage: scripts/deb.sh [--keep DIR]" >&2; exit 2; }
    keep=$(realpath -m "$2")
elif (($#)); then
    echo "usage: scripts/deb.sh [--keep DIR]" >&2
    exit 2
fi

lock=/var/tmp/libae-deb.lock
marker=/var/tmp/libae-deb.installed # present while this script's packages are installed
packages=(libae0 libae-dev ae-tools)
export DEBIAN_FRONTEND=noninteractive

fail() {
    echo "deb.sh: FAIL: $*" >&2
    exit 1
}
step() { echo "=== deb.sh: $* ==="; }

for tool in dpkg-buildpackage dh lintian fakeroot; do
    command -v "$tool" >/dev/null 2>&1 ||
        fail "$tool is missing (apt-get install dpkg-dev debhelper fakeroot lintian)"
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/ae-deb.XXXXXX")
installed=0
sudo=
if (($(id -u) != 0)); then sudo=sudo; fi
remove_packages() {
    $sudo apt-get remove --purge -y -qq -o DPkg::Lock::Timeout=300 "${packages[@]}" </dev/null \
        >"$tmp/remove.log" 2>&1 || { cat "$tmp/remove.log" >&2; return 1; }
    $sudo rm -f "$marker"
}
cleanup() {
    local rc=$?
    if ((installed)); then
        echo "deb.sh: removing ${packages[*]}"
        remove_packages || { echo "deb.sh: FAIL: could not remove ${packages[*]}" >&2; rc=1; }
    fi
    rm -rf "$tmp"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# What the tree looks like now, to prove the script leaves it so.
tree_state() {
    if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
        git status --porcelain --untracked-files=all --ignored=no
    fi
}
state_before=$(tree_state)

# Upstream version (meson.build) and package version (debian/changelog) agree.
upstream=$(sed -n "s/^ *version *: *'\([^']*\)'.*/\1/p" meson.build | head -n 1)
debversion=$(dpkg-parsechangelog -l debian/changelog -S Version)
[[ ${debversion%-*} == "$upstream" ]] ||
    fail "debian/changelog is at $debversion but meson.build at $upstream: add a changelog entry"

step "copying the tree (libae $upstream, package $debversion)"
copy=$tmp/libae-$upstream
mkdir "$copy"
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    # The files git tracks or would track (not what .gitignore names, such
    # as the build directories), as they are in the working tree.
    git ls-files -z --cached --others --exclude-standard |
        while IFS= read -r -d '' f; do [[ -e $f || -L $f ]] && printf '%s\0' "$f"; done |
        tar -c --null -T - | tar -x -C "$copy"
else
    tar -c --exclude='./build*' --exclude=./.git . | tar -x -C "$copy"
fi

step "dpkg-buildpackage -us -uc -b (DEB_BUILD_OPTIONS=nocheck)"
start=$SECONDS
(cd "$copy" && DEB_BUILD_OPTIONS="nocheck parallel=2" nice dpkg-buildpackage -us -uc -b -Pnocheck) \
    >"$tmp/build.log" 2>&1 || { tail -n 60 "$tmp/build.log" >&2; fail "dpkg-buildpackage failed"; }
grep -E 'dpkg-gensymbols|dh_makeshlibs' "$tmp/build.log" || true
echo "built in $((SECONDS - start)) s:"
changes=$(ls "$tmp"/libae_*.changes)
debs=()
for p in "${packages[@]}"; do
    deb=$(ls "$tmp/${p}_${debversion}_"*.deb 2>/dev/null || true)
    [[ -n $deb ]] || fail "no .deb for $p"
    debs+=("$deb")
    echo "  ${deb##*/}: $(dpkg-deb -f "$deb" Installed-Size) KiB installed"
done
for deb in "$tmp"/*.deb; do
    [[ ${deb##*/} =~ ^(libae0|libae-dev|ae-tools)(-dbgsym)?_ ]] || fail "unexpected package ${deb##*/}"
done

# The packages' contents as the issue lists them.
has_file() { # has_file DEB PATTERN
    local files
    files=$(dpkg-deb -c "$1" | awk '{ print $6 }')
    grep -q -E "$2" <<<"$files" || fail "${1##*/} lacks $2"
}
has_file "${debs[0]}" '^\./usr/lib/[^/]+/libae\.so\.0$'
has_file "${debs[1]}" '^\./usr/include/libae/ae\.h$'
has_file "${debs[1]}" '^\./usr/lib/[^/]+/libae\.a$'
has_file "${debs[1]}" '^\./usr/lib/[^/]+/pkgconfig/ae\.pc$'
has_file "${debs[1]}" '^\./usr/lib/[^/]+/cmake/ae/aeConfig\.cmake$'
has_file "${debs[1]}" '^\./usr/lib/[^/]+/cmake/ae/aeConfigVersion\.cmake$'
has_file "${debs[2]}" '^\./usr/bin/ae$'
has_file "${debs[2]}" '^\./usr/share/man/man1/ae\.1\.gz$'
symbols=$(dpkg-deb -I "${debs[0]}" symbols) || fail "libae0 has no symbols file"
nsym=$(grep -c '@LIBAE_' <<<"$symbols")
echo "  libae0 symbols file: $nsym symbols ($(head -n 1 <<<"$symbols"))"

# Source tree untouched?
[[ $(tree_state) == "$state_before" ]] || fail "the build changed the source tree"

step "lintian"
lintian --fail-on none --display-info "$changes" >"$tmp/lintian.txt" 2>&1 || true
cat "$tmp/lintian.txt"
lint_errors=$(grep -c '^E:' "$tmp/lintian.txt" || true)
lint_warnings=$(grep -c '^W:' "$tmp/lintian.txt" || true)
lint_summary="lintian: $lint_errors errors, $lint_warnings warnings"
if ((lint_warnings)); then
    lint_summary+=" ($(sed -n 's/^W: [^:]*: \([^ ]*\).*/\1/p' "$tmp/lintian.txt" | sort -u | paste -sd, -))"
fi

# Sets skipped to the reason when the check cannot run here; any failure
# exits the script.
skipped=
install_check() {
    if [[ -n $sudo ]] && ! sudo -n true 2>/dev/null; then
        skipped="the install check needs root"
        return 0
    fi
    exec 9>"$lock"
    flock -w 600 9 || fail "another run holds $lock"
    for p in "${packages[@]}"; do
        if dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q 'ok installed'; then
            if [[ -e $marker ]]; then
                echo "deb.sh: removing ${packages[*]}, left installed by an interrupted run"
                remove_packages || fail "could not remove the packages of an interrupted run"
                break
            fi
            skipped="$p is already installed on this machine; not replacing it"
            return 0
        fi
    done

    step "apt-get install ${debs[*]##*/}"
    $sudo touch "$marker"
    installed=1
    $sudo apt-get install -y -qq --no-install-recommends -o DPkg::Lock::Timeout=300 "${debs[@]}" \
        </dev/null >"$tmp/install.log" 2>&1 || { cat "$tmp/install.log" >&2; fail "apt-get install failed"; }

    local work=$tmp/check
    mkdir "$work"
    (
        cd "$work"
        # Nothing of this tree or a test environment may stand in for /usr.
        unset PKG_CONFIG_PATH LD_LIBRARY_PATH CMAKE_PREFIX_PATH
        [[ $(command -v ae) == /usr/bin/ae ]] || fail "ae is not /usr/bin/ae"
        ae --version
        # ldd's output taken whole first: with pipefail, grep -q closing the
        # pipe early could fail the check by SIGPIPE on ldd.
        libs=$(ldd /usr/bin/ae)
        grep -q 'libae\.so\.0 => /\(usr/\)\?lib/[^ ]*/libae\.so\.0 ' <<<"$libs" ||
            fail "/usr/bin/ae does not load the packaged libae.so.0"
        man -w ae >/dev/null 2>&1 || [[ -e /usr/share/man/man1/ae.1.gz ]] || fail "no man page"

        step "ae train --epochs 1 --limit 300"
        OPENBLAS_NUM_THREADS=1 ae train --epochs 1 --limit 300 -o model.aem >train.log 2>&1 ||
            { cat train.log >&2; fail "ae train failed"; }
        tail -n 3 train.log
        ae info model.aem >info.log 2>&1 || { cat info.log >&2; fail "ae info failed"; }
        head -n 3 info.log

        step "a consumer built with pkg-config ae against /usr"
        [[ $(pkg-config --variable=prefix ae) == /usr ]] || fail "ae.pc does not say prefix=/usr"
        cp "$copy/tests/install/consumer.c" .
        # shellcheck disable=SC2046 # flag lists
        cc -o consumer_shared consumer.c $(pkg-config --cflags --libs ae) ||
            fail "the consumer does not build with pkg-config ae"
        ./consumer_shared || fail "consumer_shared exited with $?"
        # shellcheck disable=SC2046
        cc -o consumer_static consumer.c $(pkg-config --cflags ae) \
            -Wl,-Bstatic -lae -Wl,-Bdynamic $(pkg-config --static --libs ae | sed 's/-lae\b//') ||
            fail "the consumer does not build with libae.a"
        if readelf -d consumer_static | grep -q 'NEEDED.*libae'; then
            fail "consumer_static needs libae.so"
        fi
        ./consumer_static || fail "consumer_static exited with $?"

        if command -v cmake >/dev/null 2>&1; then
            step "the CMake consumer with find_package(ae) against /usr"
            cmake -S "$copy/tests/consumer/cmake" -B cmake-build -DCMAKE_BUILD_TYPE=Release \
                >cmake.log 2>&1 || { cat cmake.log >&2; fail "cmake could not configure the consumer"; }
            grep 'libae .* from' cmake.log
            grep -q '^ae_DIR:[A-Z]*=/usr/lib/[^/]*/cmake/ae$' cmake-build/CMakeCache.txt ||
                fail "find_package(ae) did not use /usr/lib/<triplet>/cmake/ae"
            cmake --build cmake-build >cmake-build.log 2>&1 ||
                { cat cmake-build.log >&2; fail "the CMake consumer does not build"; }
            cmake-build/consumer_shared || fail "CMake consumer_shared exited with $?"
            cmake-build/consumer_static || fail "CMake consumer_static exited with $?"
        else
            echo "deb.sh: cmake is not installed: the CMake check against /usr is skipped"
        fi
    )

    step "apt-get remove ${packages[*]}"
    remove_packages || fail "could not remove ${packages[*]}"
    installed=0
    for p in "${packages[@]}"; do
        if dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q 'ok installed'; then
            fail "$p is still installed"
        fi
    done
    [[ ! -e /usr/include/libae ]] || fail "/usr/include/libae is left behind"
    flock -u 9
    return 0
}

install_check
echo "$lint_summary"
if ((lint_errors)); then
    echo "deb.sh: FAIL: lintian reports errors"
    exit 1
fi
if [[ -n $keep ]]; then
    mkdir -p "$keep"
    cp "${debs[@]}" "$keep/"
    echo "deb.sh: the packages are in $keep"
fi
if [[ -n $skipped ]]; then
    echo "deb.sh: built and linted; the install check was SKIPPED: $skipped"
    exit 77
fi
echo "deb.sh: OK: built, linted, installed, used and removed ${packages[*]}"
