#!/bin/sh
# reopen.sh — medians of kv_open time with and without hint files.
#
#   sh bench/reopen.sh KVBENCH NUM [kvbench options...]
#
# Runs `KVBENCH --num NUM --benchmarks fillrandom,(reopen,reopen-nohints)x5
# --segment-bytes 16M --auto-compact 0 [options]` (later options override earlier
# ones, e.g. --segment-bytes 64M, --value-size 1000, --drop-caches) and prints the
# median open time of each kind and their ratio. To compare two builds, run it for
# each, interleaved, in the same session (README: "Recovery").
set -eu
[ $# -ge 2 ] || { echo "usage: sh bench/reopen.sh KVBENCH NUM [kvbench options...]" >&2; exit 2; }
BIN=$1; NUM=$2; shift 2
L=fillrandom
for i in 1 2 3 4 5; do L=$L,reopen,reopen-nohints; done
"$BIN" --num "$NUM" --benchmarks "$L" --segment-bytes 16M --auto-compact 0 "$@" 2>&1 | awk '
/^reopen-nohints/ { n[++nn] = $3 }
/^reopen /        { h[++hh] = $3 }
function med(a, k,    i, j, t) {
    for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
    return a[int((k + 1) / 2)]
}
END {
    if (hh == 0 || nn == 0) { print "reopen.sh: kvbench printed no reopen results" > "/dev/stderr"; exit 1 }
    mh = med(h, hh); mn = med(n, nn)
    printf "with hints: median %.3f s   without: median %.3f s   ratio %.2f\n", mh, mn, mn / mh
}'
