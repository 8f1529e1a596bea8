#!/bin/sh
# check-layers.sh — fails when a file of the library includes a layer above its own,
# or when headers include each other in a circle (engine/README.md, "Layers").
#
# The layers, bottom up: base, format, io, store, wal (the top-level wal/ folder,
# which may use base, format and io only), db; fsck (the tools' code, not in
# libkv.so) sits on top. engine/kv.h, the public header, may be included anywhere.
# An include names its layer ("store/scan.h"); wal/ includes its own header plainly.
# Run from the top of the tree (make check-layers, part of make test). Exit 0: the
# layering holds; 1: a violation, each printed as "file: includes X (layer above)".
set -u
cd "$(dirname "$0")/.." || exit 2

level() {
    case "$1" in
    kv.h) echo 0 ;;
    base/*) echo 1 ;;
    format/*) echo 2 ;;
    io/*) echo 3 ;;
    store/*) echo 4 ;;
    wal.h) echo 5 ;;
    db/*) echo 6 ;;
    fsck/*) echo 7 ;;
    *) echo -1 ;;
    esac
}

bad=0
edges=$(mktemp)
trap 'rm -f "$edges"' EXIT
for f in engine/*/*.[ch] wal/*.[ch]; do
    case "$f" in
    wal/*) own=5; max=3; me=wal.h ;;
    *) layer=$(echo "$f" | cut -d/ -f2); own=$(level "$layer/x"); max=$own
       me=$(echo "$f" | cut -d/ -f2-) ;;
    esac
    if [ "$own" -lt 0 ]; then
        echo "$f: in no layer (engine/ holds base, format, io, store, db, fsck)"
        bad=1
        continue
    fi
    for inc in $(sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' "$f"); do
        l=$(level "$inc")
        if [ "$l" -lt 0 ]; then
            echo "$f: includes \"$inc\", which names no layer"
            bad=1
        elif [ "$l" -gt "$max" ] && [ "$inc" != "$me" ]; then
            echo "$f: includes \"$inc\", a layer above its own"
            bad=1
        fi
        case "$f" in *.h) echo "$me $inc" >> "$edges" ;; esac
    done
done

# Header cycles: repeatedly drop headers that include no header still listed.
cycle=$(awk '
    { out[$1] = out[$1] " " $2; nodes[$1] = 1; nodes[$2] = 1 }
    END {
        do {
            changed = 0
            for (n in nodes) {
                split(out[n], succ, " "); live = 0
                for (i in succ) if (succ[i] != "" && (succ[i] in nodes) && succ[i] != n) live = 1
                if (!live) { delete nodes[n]; changed = 1 }
            }
        } while (changed)
        for (n in nodes) printf "%s ", n
    }' "$edges")
if [ -n "$cycle" ]; then
    echo "headers include each other in a circle: $cycle"
    bad=1
fi
[ "$bad" -eq 0 ] && echo "check-layers: every include goes down or across, no header cycle"
exit "$bad"
