#!/bin/sh
# compact_live.sh — the writer's put latency while kvcompact compacts its store from
# another process (docs/MULTIPROCESS.md, "Compaction from another process"), and the
# space that compaction gives back. Medians of RUNS (3) runs.
#
#   sh bench/compact_live.sh BINDIR [NUM [kvbench options...]]
#
# BINDIR holds kvbench and kvcompact (build/bin). Each run is a pair, interleaved:
#   alone:  kvbench --benchmarks fillrandom,overwrite,overwrite --num NUM
#           --auto-compact 0 --segment-bytes 4M [options]
#   during: the same, with --during 'kvcompact "$KVBENCH_DB"'
# The first overwrite leaves about 60% of the data dead (auto_compact 0: nothing
# reclaims it); the second is the one measured: alone, over all its puts; during,
# over the puts made while kvcompact ran (kvbench --during), kvcompact having asked
# the writer (kvbench's handle) to compact. Later options override earlier ones
# (--sync always, --value-size 400, --compact-rate 0, ...). NUM defaults to 300000.
set -eu
[ $# -ge 1 ] || { echo "usage: sh bench/compact_live.sh BINDIR [NUM [kvbench options...]]" >&2; exit 2; }
BIN=$1; shift
NUM=300000
if [ $# -ge 1 ]; then NUM=$1; shift; fi
RUNS=${RUNS:-3}
TMP=$(mktemp -d /tmp/compact_live.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
set -- --benchmarks fillrandom,overwrite,overwrite --num "$NUM" --auto-compact 0 \
    --segment-bytes 4M "$@"
i=1
while [ "$i" -le "$RUNS" ]; do
    "$BIN/kvbench" "$@" > "$TMP/alone.$i" 2>&1
    "$BIN/kvbench" "$@" --during "'$BIN/kvcompact' \"\$KVBENCH_DB\"" > "$TMP/during.$i" 2>&1
    a=$(awk '/^overwrite/ { p50 = $6; p99 = $7 } END { print p50, p99 }' "$TMP/alone.$i")
    d=$(sed -n 's/.*during the command (\([0-9.]*\) s, \([^)]*\)): \([0-9]*\) ops, p50 \([0-9.]*\) p99 \([0-9.]*\) .*/\4 \5 \1 \3/p' "$TMP/during.$i")
    s=$(grep 'reclaimed)' "$TMP/during.$i" | sed 's/^kvcompact: [^:]*: //')
    [ -n "$d" ] && [ -n "$s" ] || { echo "compact_live.sh: run $i printed no figures:" >&2; cat "$TMP/during.$i" >&2; exit 1; }
    echo "run $i: alone p50/p99 $a us | during kvcompact p50/p99 $(echo "$d" | cut -d' ' -f1-2) us" \
         "($(echo "$d" | cut -d' ' -f4) puts in $(echo "$d" | cut -d' ' -f3) s) | $s"
    echo "$a $d" >> "$TMP/figures"
    i=$((i + 1))
done
awk '
function med(a, k,    i, j, t) {
    for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
    return a[int((k + 1) / 2)]
}
{ ap50[NR] = $1; ap99[NR] = $2; dp50[NR] = $3; dp99[NR] = $4 }
END {
    a = med(ap99, NR); d = med(dp99, NR); x = 0
    if (a > 0) x = d / a
    printf "medians of %d: put p50 %.2f us alone, %.2f us during kvcompact; put p99 %.2f us alone, %.2f us during kvcompact (x%.2f)\n",
        NR, med(ap50, NR), med(dp50, NR), a, d, x
}' "$TMP/figures"
