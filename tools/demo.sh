#!/bin/sh
# demo.sh — show a new user what kv does: `sh tools/demo.sh BUILD_DIR` (make run).
#
# Runs BUILD_DIR/bin/kvdemo (the library API tour) on a fresh store, then drives the
# kv command-line tool on another fresh store: put, get, put from stdin (binary
# bytes, compared with cmp), del, get of the deleted key (exit status 1), keys,
# scan, stats, a kvdump of the store loaded into a copy (whose dump is the same
# bytes), and a get on a missing store (exit status 3). Each command is printed
# before its output. Everything lives in one temporary directory, removed at exit.
# Any unexpected result stops the demo with a message and a non-zero status.
set -eu

if [ $# -ne 1 ]; then
    echo "usage: sh tools/demo.sh BUILD_DIR" >&2
    exit 2
fi
BUILD=$1
KV_BIN=$BUILD/bin/kv
KVDUMP_BIN=$BUILD/bin/kvdump
KVDEMO_BIN=$BUILD/bin/kvdemo
for b in "$KV_BIN" "$KVDUMP_BIN" "$KVDEMO_BIN"; do
    if [ ! -x "$b" ]; then
        echo "demo: $b is missing: run 'make' first" >&2
        exit 1
    fi
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/kvdemo.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT HUP TERM

# kv runs the tool; the shell function keeps the printed commands short.
kv() { "$KV_BIN" "$@"; }
kvdump() { "$KVDUMP_BIN" "$@"; }

# quote ARG: ARG as a reader would type it (single-quoted when needed).
quote() {
    case $1 in
    '' | *[!A-Za-z0-9_./=:@%+-]*)
        printf "'%s'" "$(printf '%s' "$1" | sed "s/'/'\\\\''/g")" ;;
    *) printf '%s' "$1" ;;
    esac
}

# say CMD ARGS...: print "$ CMD ARGS" as a reader would type it.
say() {
    printf '\n$'
    for a in "$@"; do
        printf ' %s' "$(quote "$a")"
    done
    printf '\n'
}

# run CMD ARGS...: print the command, then run it (its output follows).
run() {
    say "$@"
    "$@"
}

# fail MESSAGE: stop the demo.
fail() {
    echo "demo: FAILED: $*" >&2
    exit 1
}

echo "== 1. The library API tour: kvdemo"
run "$KVDEMO_BIN" "$tmp/demo.db"

echo
echo "== 2. The kv command-line tool"
KV_DIR=$tmp/cli.db
export KV_DIR
say export KV_DIR="$KV_DIR"
echo "(kv uses \$KV_DIR as its store unless -d DIR is given;"
echo " the first put creates the store)"

run kv put greeting "hello, world"
say kv get greeting
kv get greeting
echo "    <- the value, printed as stored (kv adds no newline)"
[ "$(kv get greeting)" = "hello, world" ] || fail "get greeting returned the wrong value"

printf 'bin\000ary\377\n\001data' >"$tmp/blob.in"
echo
echo "A value read from stdin is stored byte for byte, NUL bytes included:"
say od -An -c "$tmp/blob.in"
od -An -c "$tmp/blob.in"
printf '\n$ kv put blob - < %s\n' "$tmp/blob.in"
kv put blob - <"$tmp/blob.in"
printf '\n$ kv get blob > %s\n' "$tmp/blob.out"
kv get blob >"$tmp/blob.out"
run cmp "$tmp/blob.in" "$tmp/blob.out"
echo "(cmp printed nothing: the bytes read back are identical)"

key=$(printf 'caf\303\251')
run kv put "$key" "a key with non-ASCII bytes"
run kv put scratch "to be deleted"
run kv del scratch

say kv get scratch
rc=0
kv get scratch 2>&1 || rc=$?
echo "exit status: $rc (1 means: key not found)"
[ "$rc" -eq 1 ] || fail "get of a deleted key should exit 1, not $rc"

echo
echo "Listing the keys (any byte outside printable ASCII is shown as \\xHH):"
run kv keys

run kv stats

echo
echo "Every key with its value, in key order (a tab between them, both escaped):"
run kv scan

echo
echo "The store as text that kv load reads back (kvdump -p: printable escapes):"
run kvdump -p "$KV_DIR"
printf '\n$ kvdump %s > %s\n' "$KV_DIR" "$tmp/dump"
kvdump "$KV_DIR" >"$tmp/dump"
printf '\n$ kv -d %s load < %s\n' "$tmp/copy.db" "$tmp/dump"
kv -d "$tmp/copy.db" load <"$tmp/dump"
printf '\n$ kvdump %s | cmp - %s\n' "$tmp/copy.db" "$tmp/dump"
kvdump "$tmp/copy.db" | cmp - "$tmp/dump" || fail "the copy does not dump the same"
echo "(cmp printed nothing: the copy dumps to the same bytes)"

say kv -d "$tmp/no-such-store" get greeting
rc=0
kv -d "$tmp/no-such-store" get greeting 2>&1 || rc=$?
echo "exit status: $rc (3 means: the store could not be used)"
[ "$rc" -eq 3 ] || fail "get on a missing store should exit 3, not $rc"

echo
echo "demo: all steps succeeded"
