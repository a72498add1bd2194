#!/bin/sh
# API hygiene of the built libraries:
# 1. libae.so exports exactly the global names of the linker version script
#    src/libae.map, each under the version node of the section that lists it
#    (no extra export, no missing one, none unversioned).
# 2. Every external symbol that libae.a defines starts with ae_ (or AE_), so
#    a program linking it statically cannot clash with the library's
#    internal helpers.
#
# Usage: check_symbols.sh LIBAE_SO LIBAE_MAP [LIBAE_A]
set -eu

so=$1
map=$2
archive=${3:-}
NM=${NM:-nm}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/ae-symbols.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' INT TERM
status=0

# "name@@NODE" for each name under `global:` in each `NODE { ... }` section;
# comments (/* */ or #) and `local:` patterns are skipped.
sed -e 's|/\*.*\*/||g' -e 's|#.*||' "$map" |
    awk '
    /\/\*/ { incomment = 1 }
    incomment { if ($0 ~ /\*\//) incomment = 0; next }
    {
        line = $0
        if (match(line, /^[ \t]*[A-Za-z_][A-Za-z0-9_.]*[ \t]*\{/)) {
            node = line
            sub(/^[ \t]*/, "", node)
            sub(/[ \t]*\{.*/, "", node)
            scope = ""
            next
        }
        if (line ~ /global:/) { scope = "global"; sub(/.*global:/, "", line) }
        if (line ~ /local:/) { scope = "local"; next }
        if (line ~ /\}/) { scope = ""; next }
        if (scope != "global") next
        n = split(line, parts, /[ \t;]+/)
        for (i = 1; i <= n; i++)
            if (parts[i] != "") print parts[i] "@@" node
    }' | sort -u >"$tmp/map"

[ -s "$tmp/map" ] || { echo "check_symbols: no global symbol found in $map" >&2; exit 1; }

# Defined dynamic symbols of the library. Absolute symbols are the version
# nodes themselves (LIBAE_0.1), not functions or data.
$NM -D --defined-only "$so" >"$tmp/nm"
awk '$2 != "A" { print $3 }' "$tmp/nm" | sort -u >"$tmp/exported"

unversioned=$(grep -v '@' "$tmp/exported" || true)
if [ -n "$unversioned" ]; then
    echo "check_symbols: exported without a version node:" >&2
    echo "$unversioned" | sed 's/^/  /' >&2
    status=1
fi

extra=$(comm -13 "$tmp/map" "$tmp/exported")
missing=$(comm -23 "$tmp/map" "$tmp/exported")
if [ -n "$extra" ]; then
    echo "check_symbols: libae.so exports symbols that $map does not list (as name@@node):" >&2
    echo "$extra" | sed 's/^/  /' >&2
    status=1
fi
if [ -n "$missing" ]; then
    echo "check_symbols: $map lists symbols that libae.so does not export (as name@@node):" >&2
    echo "$missing" | sed 's/^/  /' >&2
    status=1
fi

if [ -n "$archive" ]; then
    # External symbols defined by the objects of the archive (T, D, B, R, ...);
    # the sanitizers' and the compiler's own helpers are not ours.
    $NM -g --defined-only "$archive" |
        awk 'NF == 3 { print $3 }' |
        grep -v -E '^(ae_|AE_)' |
        grep -v -E '^(__asan|__ubsan|__sanitizer|__lsan|__gcov|__llvm|__odr_asan|__profc|__profd)' |
        sort -u >"$tmp/unprefixed" || true
    if [ -s "$tmp/unprefixed" ]; then
        echo "check_symbols: libae.a defines external symbols without the ae_ prefix" \
            "(make them static or rename them):" >&2
        sed 's/^/  /' "$tmp/unprefixed" >&2
        status=1
    fi
fi

if [ "$status" -eq 0 ]; then
    echo "check_symbols: OK: $(wc -l <"$tmp/exported") exported symbols match $(basename "$map")"
fi
exit "$status"
