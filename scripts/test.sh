#!/bin/bash
# The whole test suite, exactly as CI runs it (.ci/run) and README.md tells:
# installs the Debian packages it needs when they are missing, then builds
# libae twice with warnings as errors and runs every meson test in each:
#   build-test/           release build; with oneDNN built in, the unit
#                         suite a second time on OpenBLAS (--setup openblas)
#   build-test-sanitize/  ASan + UBSan build; any finding (leaks too) fails
#                         (Open MPI's own allocations left at exit are
#                         suppressed for the MPI tests: tests/mpi/lsan.supp)
# Both run the MPI tests (suite mpi, under mpirun on 2 and 3 ranks).
# then, when dpkg-dev and debhelper are there, scripts/deb.sh builds, lints,
# installs, checks and removes the Debian packages (one more test; its
# lintian summary is printed before the totals).
# Both directories are recreated on every run so no earlier state leaks in.
# Exits non-zero on any failure; the last line is "N passed, N failed".
set -euo pipefail

cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive

packages=(meson ninja-build pkg-config gcc g++ libopenblas-dev libdnnl-dev libcmocka-dev zlib1g-dev
          libpng-dev libjpeg62-turbo-dev libopenmpi-dev openmpi-bin dataset-fashion-mnist
          libprotobuf-c-dev protobuf-c-compiler libonnx-dev nodejs
          dpkg-dev debhelper fakeroot lintian cmake)
missing=()
for p in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
        missing+=("$p")
    fi
done
# npm for the ONNX Runtime test (tests/onnx/); a nodejs from elsewhere may
# carry its own.
command -v npm >/dev/null 2>&1 || missing+=(npm)
if ((${#missing[@]})); then
    echo "test.sh: installing ${missing[*]}"
    apt-get update -qq </dev/null
    apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null
fi

# One OpenBLAS thread and one OpenMP thread (oneDNN's): the tests expect
# bitwise-reproducible results and the machine is small.
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1

passed=0
failed=0
status=0

# run_suite DIR: runs meson test in DIR, adds its counts to the totals.
run_suite() {
    local dir=$1 rc=0 ok xfail fail xpass timeout
    meson test -C "$dir" --print-errorlogs "${@:2}" 2>&1 | tee "$dir/test-output.txt" || rc=$?
    count() { sed -n "s/^$1: *\([0-9][0-9]*\).*/\1/p" "$dir/test-output.txt" | tail -n 1; }
    ok=$(count Ok) xfail=$(count 'Expected Fail') fail=$(count Fail)
    xpass=$(count 'Unexpected Pass') timeout=$(count Timeout)
    passed=$((passed + ${ok:-0} + ${xfail:-0}))
    failed=$((failed + ${fail:-0} + ${xpass:-0} + ${timeout:-0}))
    if ((rc != 0)); then
        status=1
        # A run that failed without counting a failure (e.g. a build error).
        if ((${fail:-0} + ${xpass:-0} + ${timeout:-0} == 0)); then failed=$((failed + 1)); fi
    fi
}

rm -rf build-test build-test-sanitize

echo "=== release build (build-test) ==="
meson setup build-test -Dwerror=true
meson compile -C build-test
run_suite build-test
# The default run computes on the AUTO backend, oneDNN when it is built in
# (the test setup exists then): the parity, golden and finite-difference
# tests run once more with every model and layer on OpenBLAS.
if meson test -C build-test --list --setup onednn >/dev/null 2>&1; then
    echo "=== unit tests on the OpenBLAS backend (build-test, --setup openblas) ==="
    run_suite build-test --setup openblas --suite unit
fi

echo "=== ASan + UBSan build (build-test-sanitize) ==="
# b_lundef=false: the sanitizer runtimes resolve some symbols only at run time.
meson setup build-test-sanitize -Dwerror=true -Dbuildtype=debugoptimized \
    -Db_sanitize=address,undefined -Db_lundef=false
meson compile -C build-test-sanitize
export ASAN_OPTIONS=detect_leaks=1:halt_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
run_suite build-test-sanitize --timeout-multiplier 3

echo "test.sh: release and sanitizer builds done"

echo "=== Debian packages (scripts/deb.sh) ==="
lintian_line="lintian: not run (dpkg-dev or debhelper missing)"
if command -v dpkg-buildpackage >/dev/null 2>&1 && command -v dh >/dev/null 2>&1; then
    deb_rc=0
    bash scripts/deb.sh 2>&1 | tee build-test/deb-output.txt || deb_rc=$?
    lintian_line=$(grep '^lintian: ' build-test/deb-output.txt | tail -n 1 || true)
    lintian_line=${lintian_line:-"lintian: no result (see build-test/deb-output.txt)"}
    case $deb_rc in
    0) passed=$((passed + 1)) ;;
    77) echo "test.sh: the Debian install check was skipped (see above)" ;;
    *) failed=$((failed + 1)) status=1 ;;
    esac
else
    echo "test.sh: dpkg-buildpackage or dh not found: the Debian packages are not checked"
fi
echo "test.sh: $lintian_line"
echo "tests: $passed passed, $failed failed"
exit "$status"
