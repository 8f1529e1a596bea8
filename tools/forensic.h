/*
 * forensic.h — kvdump's forensic listing (kvdump --all DIR, kvdump FILE): every
 * record of every file as it lies on disk, damage included, over engine/fsck/inspect.h.
 */
#ifndef KV_FORENSIC_H
#define KV_FORENSIC_H

#include <stddef.h>
#include <stdint.h>

typedef struct forensic_opts {
    int json;               /* one JSON object per line instead of text lines */
    int has_prefix;         /* list only the records whose key starts with prefix */
    const uint8_t *prefix;
    size_t prefix_len;
} forensic_opts;

/* Lists every file of the store directory dir, and every record of its segments,
 * WAL files and hint files, in file order. Returns kvdump's exit code (0 listed,
 * 2 dir is no directory or holds no kv file, 3 an I/O error or writing stdout
 * failed), having printed any diagnostic. */
int forensic_dir(const char *dir, const forensic_opts *o);

/* The same for one file outside any store: a segment, WAL, hint or MANIFEST file
 * (or a LOCK), known by its name or its magic. Exit code 2 when path is not a
 * regular file, not a kv file, or of a newer format version. */
int forensic_file(const char *path, const forensic_opts *o);

#endif
