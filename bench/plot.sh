#!/bin/sh
# plot.sh — draws peerbench's results (its --json lines) as PNG plots with gnuplot
# (Debian gnuplot-nox, installed by bench/deps):
#   OUTDIR/throughput.png  ops/s per workload, one bar per engine (log scale)
#   OUTDIR/p99.png         p99 latency in microseconds, the same way (log scale)
#   OUTDIR/space.png       disk bytes / logical bytes per engine, after each
#                          workload that measures it (fills, overwrite, compact)
#   OUTDIR/table.md        the same figures as a Markdown table, a row per
#                          workload, a column per engine: ops/s, p99 in us, and
#                          disk/logical where measured (docs/BENCHMARKS.md's table)
# From the median lines when the run has them (--repeat above 1), else from the
# result lines (a run of --repeat 1). One-operation rows (compact, crashopen) are
# in throughput and p99 as their single timing.
#
# usage: bench/plot.sh RESULTS.jsonl [OUTDIR]   (OUTDIR: the current directory)
# exit: 0 plots written; 1 no results in the file, or gnuplot failed; 2 usage error
#       or gnuplot not installed.
# The data files gnuplot reads are kept beside the plots (OUTDIR/*.dat), so a
# figure can be checked against the numbers.
set -eu

usage() {
    echo "usage: bench/plot.sh RESULTS.jsonl [OUTDIR]" >&2
    exit 2
}
[ $# -ge 1 ] && [ $# -le 2 ] || usage
in=$1
out=${2:-.}
[ -r "$in" ] || { echo "plot.sh: $in: cannot read" >&2; exit 2; }
command -v gnuplot >/dev/null 2>&1 || {
    echo "plot.sh: gnuplot not installed (bench/deps installs gnuplot-nox)" >&2
    exit 2
}
mkdir -p "$out"

# table METRIC FILE: a workload per row, an engine per column, "-" where missing.
# peerbench's lines are flat objects, so a field is found by its quoted name.
table() {
    awk -v metric="$1" '
    function field(line, key,    at, rest) {
        at = index(line, "\"" key "\":")
        if (at == 0)
            return ""
        rest = substr(line, at + length(key) + 3)
        if (substr(rest, 1, 1) == "\"") {
            rest = substr(rest, 2)
            return substr(rest, 1, index(rest, "\"") - 1)
        }
        match(rest, /^[^,}]*/)
        return substr(rest, 1, RLENGTH)
    }
    { line[NR] = $0; if (index($0, "\"type\":\"median\"")) medians = 1 }
    END {
        want = medians ? "median" : "result"
        for (i = 1; i <= NR; i++) {
            if (field(line[i], "type") != want)
                continue
            e = field(line[i], "engine"); w = field(line[i], "benchmark")
            v = field(line[i], metric)
            if (v == "")
                continue
            if (!(e in eseen)) { eseen[e] = 1; eng[++ne] = e }
            if (!(w in wseen)) { wseen[w] = 1; wl[++nw] = w }
            val[w, e] = v
        }
        if (nw == 0)
            exit 1
        printf "workload"
        for (j = 1; j <= ne; j++)
            printf " %s", eng[j]
        printf "\n"
        for (i = 1; i <= nw; i++) {
            printf "%s", wl[i]
            for (j = 1; j <= ne; j++)
                printf " %s", ((wl[i], eng[j]) in val) ? val[wl[i], eng[j]] : "-"
            printf "\n"
        }
    }' "$in" > "$2" || { echo "plot.sh: $in: no $1 in any result line" >&2; exit 1; }
}

table ops_per_sec "$out/throughput.dat"
table p99_us "$out/p99.dat"
table space_amp "$out/space.dat"

# The Markdown table: throughput.dat, p99.dat and space.dat have the same engines
# in the same order; a row of space.dat exists only where it was measured.
awk '
function si(v) {
    if (v == "-") return "-"
    if (v >= 1e6) return sprintf("%.2fM", v / 1e6)
    if (v >= 1e4) return sprintf("%.0fk", v / 1e3)
    if (v >= 1e3) return sprintf("%.1fk", v / 1e3)
    return sprintf("%.0f", v)
}
FILENAME ~ /p99.dat$/ { if (FNR > 1) for (c = 2; c <= NF; c++) p99[$1, c] = $c; next }
FILENAME ~ /space.dat$/ { if (FNR > 1) for (c = 2; c <= NF; c++) amp[$1, c] = $c; next }
FNR == 1 {
    printf "| workload |"; for (c = 2; c <= NF; c++) printf " %s |", $c; printf "\n"
    printf "|---|"; for (c = 2; c <= NF; c++) printf "---|"; printf "\n"
    next
}
{
    printf "| %s |", $1
    for (c = 2; c <= NF; c++) {
        cell = si($c)
        if ($c != "-" && p99[$1, c] != "-") cell = cell sprintf(", p99 %.1f us", p99[$1, c])
        if (($1, c) in amp && amp[$1, c] != "-") cell = cell sprintf(", disk/logical %.2f", amp[$1, c])
        printf " %s |", cell
    }
    printf "\n"
}' "$out/p99.dat" "$out/space.dat" "$out/throughput.dat" > "$out/table.md"

# bars FILE PNG TITLE YLABEL LOG: a clustered bar chart, one cluster per row.
bars() {
    ncol=$(head -n 1 "$1" | awk '{ print NF }')
    gnuplot <<EOF
set terminal pngcairo size 1600,700 noenhanced font "sans,10"
set output "$2"
set title "$3"
set ylabel "$4"
set datafile missing "-"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set key outside right top
set xtics rotate by -40 scale 0
set grid ytics
$5
plot for [c=2:$ncol] "$1" using c:xtic(1) title columnheader(c)
EOF
}

bars "$out/throughput.dat" "$out/throughput.png" "peerbench: throughput per workload" \
    "operations per second" "set logscale y; set yrange [1:*]"
bars "$out/p99.dat" "$out/p99.png" "peerbench: p99 latency per workload" \
    "p99 latency, microseconds" "set logscale y; set yrange [0.1:*]"
bars "$out/space.dat" "$out/space.png" \
    "peerbench: space amplification (disk bytes / logical bytes) per engine" \
    "disk / logical" "set yrange [0:*]"
echo "plot.sh: wrote $out/throughput.png $out/p99.png $out/space.png $out/table.md"
